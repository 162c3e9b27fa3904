//! `anshin demo`: the demo marketplace, the processor simulator as the demo
//! tenant's processor, anshin and the demo shop on another origin, so that a
//! new user can pay in a browser; and the guide `anshin serve --demo` prints.

use std::net::SocketAddr;
use std::sync::Arc;

use anshin_processor_sim::Simulator;

use super::serve;
use crate::app::App;
use crate::config::Config;
use crate::demo::{self, DemoAccess};
use crate::demo_shop::{DemoShop, ShopConfig};
use crate::error::{Error, ErrorKind, Result};

pub async fn run(config: &Config, json: bool, shop_listen: SocketAddr) -> Result<()> {
    let location = config.location();
    let mut app = if location.is_initialised() {
        App::open(&location).await?
    } else {
        App::init(&location).await?.0
    };
    app.trust_proxies(config.trusted_proxies.clone());
    let app = Arc::new(app);
    let access = demo::load(app.clone()).await?;
    if json {
        return print_json(&access);
    }
    let sim = Simulator::start(anshin_processor_sim::Config::default())
        .await
        .map_err(|e| {
            Error::new(
                ErrorKind::Internal,
                "simulator_failed",
                format!("cannot start the processor simulator: {e}"),
            )
        })?;
    // The simulator is the one outbound host the demo may send card data to.
    let mut checkout = config.checkout_settings();
    checkout
        .allowed_hosts
        .push(format!("127.0.0.1:{}", sim.addr().port()));
    // The demo shop's webhook receiver is on loopback.
    checkout.webhook_loopback = true;
    app.configure_checkout(checkout);
    demo::use_processor(&app, &access.tenant_id, sim.url(), sim.ca_pem()).await?;
    let (listener, base) = serve::bind(config).await?;
    let (shop, shop_key) = access.shops.first().ok_or_else(|| Error::not_found("shop"))?;
    let shop = DemoShop::start(ShopConfig {
        listen: shop_listen,
        anshin_url: base.clone(),
        api_key: shop_key.clone(),
        shop_name: shop.name.clone(),
        shop_id: shop.id.to_string(),
    })
    .await?;
    print_guide(&access, &base);
    println!();
    println!("Checkout in a browser / ブラウザで決済を試す:");
    println!(
        "  open {}/   (the demo shop, another origin; English: {}/?lang=en)",
        shop.url(),
        shop.url()
    );
    println!(
        "  test cards / テスト用カード: 4111 1111 1111 1111 approved; 4000 0000 0000 3220 3-D Secure (code {}); \
         4000 0000 0000 0002 declined; any future expiry, any 3 digits",
        anshin_processor_sim::CHALLENGE_CODE
    );
    println!("  processor simulator / 決済代行シミュレーター: {}", sim.url());
    println!("  the shop's own log shows what it received: never a card number");
    println!(
        "  its orders, with the status its signed webhooks told / Webhook で届いた決済状態: {}/orders",
        shop.url()
    );
    println!(
        "anshin listening on {base} (store: {})",
        app.store.backend().as_str()
    );
    let served = serve::serve_app(config, app, listener).await;
    shop.shutdown().await;
    sim.shutdown().await;
    served
}

fn print_json(access: &DemoAccess) -> Result<()> {
    let shops: Vec<_> = access
        .shops
        .iter()
        .map(|(shop, key)| serde_json::json!({ "shop_id": shop.id, "name": shop.name, "api_key": key.expose() }))
        .collect();
    let out = serde_json::json!({
        "tenant_id": access.tenant_id,
        "operator_api_key": access.operator_key.expose(),
        "processor_api_key": access.processor_key.expose(),
        "auditor_api_key": access.auditor_key.expose(),
        "shops": shops,
        "sample_card_token": access.sample_card,
        "sample_order_id": access.sample_order,
        "sample_customer_id": access.sample_customer,
    });
    println!("{}", serde_json::to_string_pretty(&out).map_err(Error::internal)?);
    Ok(())
}

/// Keys (shown once) and curl commands that work against the demo.
pub fn print_guide(access: &DemoAccess, base: &str) {
    let shop_key = access.shops.first().map(|(_, k)| k.expose()).unwrap_or_default();
    println!();
    println!("Demo marketplace / デモ・マーケット: tenant {}", access.tenant_id);
    for (shop, _) in &access.shops {
        println!("  shop {}  {}", shop.id, shop.name);
    }
    println!();
    println!(
        "Keys for this run (shown once; earlier demo keys are now disabled) / 今回のキー（一度だけ表示）:"
    );
    println!("export ANSHIN={base}");
    println!("export OPERATOR_KEY={}", access.operator_key.expose());
    println!("export SHOP_KEY={shop_key}");
    println!("export PROCESSOR_KEY={}", access.processor_key.expose());
    println!("export AUDITOR_KEY={}", access.auditor_key.expose());
    println!();
    println!("Try / 試す:");
    println!("# a shop tokenizes a card (public test number) and gets a token, never the number back");
    println!(
        "curl -s -H \"Authorization: Bearer $SHOP_KEY\" -H 'Content-Type: application/json' \\\n  -d '{{\"number\":\"4111 1111 1111 1111\",\"exp_month\":12,\"exp_year\":2030,\"holder_name\":\"TARO YAMADA\"}}' $ANSHIN/v1/cards"
    );
    println!("# the shop's orders: masked cards only");
    println!("curl -s -H \"Authorization: Bearer $SHOP_KEY\" \"$ANSHIN/v1/orders?limit=3\"");
    println!(
        "curl -s -H \"Authorization: Bearer $SHOP_KEY\" $ANSHIN/v1/orders/{}",
        access.sample_order
    );
    println!(
        "curl -s -H \"Authorization: Bearer $SHOP_KEY\" $ANSHIN/v1/cards/{}",
        access.sample_card
    );
    println!("# only a processor may reveal; a shop gets 403");
    println!(
        "curl -s -X POST -H \"Authorization: Bearer $PROCESSOR_KEY\" $ANSHIN/v1/cards/{}/reveal",
        access.sample_card
    );
    println!(
        "curl -s -X POST -H \"Authorization: Bearer $SHOP_KEY\" $ANSHIN/v1/cards/{}/reveal",
        access.sample_card
    );
    println!("# shipping address: the selling shop reads it until 14 days after completion, then 410");
    println!(
        "curl -s -H \"Authorization: Bearer $SHOP_KEY\" $ANSHIN/v1/orders/{}/shipping",
        access.sample_order
    );
    println!("# bulk export (the 2005 leak path): past 500 rows a day it needs an operator's approval (429)");
    println!(
        "curl -s -H \"Authorization: Bearer $SHOP_KEY\" \"$ANSHIN/v1/orders/export?format=csv\" | head -3"
    );
    println!("# every access above is in the audit log: the shopper's history, the signed checkpoint");
    println!(
        "curl -s -H \"Authorization: Bearer $OPERATOR_KEY\" $ANSHIN/v1/customers/{}/access-log",
        access.sample_customer
    );
    println!("curl -s -H \"Authorization: Bearer $AUDITOR_KEY\" \"$ANSHIN/v1/audit/events?limit=3\"");
    println!("curl -s -H \"Authorization: Bearer $AUDITOR_KEY\" $ANSHIN/v1/audit/checkpoint");
    println!("# operators manage tenants, shops and principals; auditors see metadata only");
    println!("curl -s -H \"Authorization: Bearer $OPERATOR_KEY\" $ANSHIN/v1/principals");
    println!("curl -s -H \"Authorization: Bearer $AUDITOR_KEY\" $ANSHIN/v1/tenants");
    println!("curl -s $ANSHIN/v1/openapi.json | head -c 300; echo");
    println!("curl -s $ANSHIN/metrics | grep anshin_http | head");
}
