//! The demo marketplace: one tenant, 3 shops, 1,000 customers and 5,000 orders
//! paid with the card brands' public test numbers. Synthetic data only: names
//! from common-name lists, addresses in real prefectures with made-up streets,
//! e-mail at the reserved example.jp domain.
//!
//! Loading again keeps the data but mints fresh keys and disables the previous
//! demo keys, since keys are shown once and never stored.

use std::sync::Arc;

use anshin_crypto::secret::SecretString;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::task::JoinSet;

use crate::access::principals::{NewPrincipal, PrincipalQuery};
use crate::access::{Actor, Role};
use crate::app::App;
use crate::error::{Error, Result};
use crate::ids::{PrincipalId, TenantId};
use crate::orders::{NewOrder, OrderQuery, ShippingInput};
use crate::proxy::payments::DEFAULT_ROUTE;
use crate::proxy::routes::RouteInput;
use crate::tenancy::{NewNamed, Shop};
use crate::vault::cards::CardInput;
use crate::vault::customers::NewCustomer;

const DEMO_TENANT_KEY: &str = "demo_tenant";
const DEMO_PREFIX: &str = "demo: ";
const SHOPS: [&str; 3] = [
    "さくら雑貨店 (Sakura Zakka)",
    "富士山茶舗 (Fujisan Tea)",
    "みなと電器 (Minato Denki)",
];
const CUSTOMERS: usize = 1_000;
const ORDERS: usize = 5_000;
const CONCURRENCY: usize = 64;

/// Public test card numbers of the brands anshin supports.
pub const TEST_CARDS: [&str; 12] = [
    "4111111111111111",
    "4242424242424242",
    "4012888888881881",
    "5555555555554444",
    "5105105105105100",
    "2223003122003222",
    "378282246310005",
    "371449635398431",
    "3530111333300000",
    "3566002020360505",
    "30569309025904",
    "6011111111111117",
];

const FAMILY: [(&str, &str); 10] = [
    ("佐藤", "サトウ"),
    ("鈴木", "スズキ"),
    ("高橋", "タカハシ"),
    ("田中", "タナカ"),
    ("伊藤", "イトウ"),
    ("渡辺", "ワタナベ"),
    ("山本", "ヤマモト"),
    ("中村", "ナカムラ"),
    ("小林", "コバヤシ"),
    ("加藤", "カトウ"),
];
const GIVEN: [(&str, &str); 10] = [
    ("太郎", "タロウ"),
    ("花子", "ハナコ"),
    ("翔", "ショウ"),
    ("陽菜", "ヒナ"),
    ("蓮", "レン"),
    ("結衣", "ユイ"),
    ("大翔", "ヒロト"),
    ("葵", "アオイ"),
    ("悠真", "ユウマ"),
    ("さくら", "サクラ"),
];
const PLACES: [&str; 6] = [
    "東京都千代田区",
    "大阪府大阪市北区",
    "愛知県名古屋市中区",
    "福岡県福岡市博多区",
    "北海道札幌市中央区",
    "宮城県仙台市青葉区",
];

/// Keys and ids a demo user needs; keys are shown once.
pub struct DemoAccess {
    pub tenant_id: TenantId,
    pub shops: Vec<(Shop, SecretString)>,
    pub operator_key: SecretString,
    pub processor_key: SecretString,
    pub auditor_key: SecretString,
    pub sample_card: String,
    pub sample_order: String,
    pub sample_customer: String,
}

/// A small deterministic generator (SplitMix64) for reproducible demo data; not
/// for anything secret.
pub(crate) struct Sequence(pub(crate) u64);

impl Sequence {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn local_operator() -> Result<Actor> {
    Ok(Actor {
        principal_id: PrincipalId::generate()?,
        role: Role::Operator,
        tenant_id: None,
        shop_id: None,
        origin: None,
        purpose: Some("demo".into()),
    })
}

/// Loads the demo (once) and mints fresh demo keys.
pub async fn load(app: Arc<App>) -> Result<DemoAccess> {
    let admin = local_operator()?;
    let tenant_id = match app.store.meta(DEMO_TENANT_KEY).await? {
        Some(id) => {
            TenantId::parse(&String::from_utf8_lossy(&id)).ok_or_else(|| Error::not_found("tenant"))?
        }
        None => {
            let tenant = create_data(&app, &admin).await?;
            app.store
                .meta_init(DEMO_TENANT_KEY, tenant.as_str().as_bytes().to_vec())
                .await?;
            tenant
        }
    };
    for old in app
        .principals(
            &admin,
            PrincipalQuery {
                tenant_id: Some(tenant_id.to_string()),
            },
        )
        .await?
    {
        if old.name.starts_with(DEMO_PREFIX) && old.disabled_at.is_none() {
            app.disable_principal(&admin, old.id.as_str()).await?;
        }
    }
    let mint = |role: Role, name: &str, shop: Option<String>| {
        let app = app.clone();
        let admin = admin.clone();
        let tenant = tenant_id.to_string();
        let name = format!("{DEMO_PREFIX}{name}");
        async move {
            let input = NewPrincipal {
                name,
                role,
                tenant_id: Some(tenant),
                shop_id: shop,
                allowed_ips: None,
            };
            app.create_principal(Some(&admin), input)
                .await
                .map(|(_, key)| key)
        }
    };
    let mut shops = Vec::new();
    for shop in app.shops(&admin, tenant_id.as_str()).await? {
        let key = mint(Role::Shop, &shop.name, Some(shop.id.to_string())).await?;
        shops.push((shop, key));
    }
    let operator_key = mint(Role::Operator, "operator", None).await?;
    let processor_key = mint(Role::Processor, "processor", None).await?;
    let auditor_key = mint(Role::Auditor, "auditor", None).await?;
    let first_shop = shops.first().map(|(s, _)| s.id.to_string());
    let page = app
        .orders(
            &admin,
            OrderQuery {
                shop_id: first_shop,
                after: None,
                limit: Some(1),
            },
        )
        .await?;
    let sample = page
        .orders
        .into_iter()
        .next()
        .ok_or_else(|| Error::not_found("order"))?;
    Ok(DemoAccess {
        tenant_id,
        shops,
        operator_key,
        processor_key,
        auditor_key,
        sample_card: sample.card.map(|c| c.token).unwrap_or_default(),
        sample_order: sample.id,
        sample_customer: sample.customer_id,
    })
}

/// Makes the processor at `url` (the simulator `anshin demo` starts) the demo
/// tenant's default processor route, trusting only the CA in `ca_pem`.
pub async fn use_processor(app: &App, tenant: &TenantId, url: &str, ca_pem: &str) -> Result<()> {
    let input = RouteInput {
        kind: "processor".into(),
        url: url.to_owned(),
        ca_pem: Some(ca_pem.to_owned()),
        template: None,
        timeout_ms: None,
        acs_origins: None,
        token_paths: None,
    };
    app.put_route(&local_operator()?, tenant.as_str(), DEFAULT_ROUTE, input)
        .await?;
    Ok(())
}

async fn create_data(app: &Arc<App>, admin: &Actor) -> Result<TenantId> {
    let tenant = app
        .create_tenant(
            admin,
            NewNamed {
                name: "あんしんマーケット (demo marketplace)".into(),
            },
        )
        .await?;
    let mut shops = Vec::new();
    for name in SHOPS {
        let shop = app
            .create_shop(admin, tenant.id.as_str(), NewNamed { name: name.into() })
            .await?;
        let actor = Actor {
            principal_id: PrincipalId::generate()?,
            role: Role::Shop,
            tenant_id: Some(tenant.id.clone()),
            shop_id: Some(shop.id.clone()),
            origin: None,
            purpose: Some("demo".into()),
        };
        shops.push(actor);
    }
    let progress = ProgressBar::new((CUSTOMERS + ORDERS) as u64).with_message("loading the demo");
    progress.set_style(
        ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} ({per_sec}, {eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut seq = Sequence(2005);
    // Customers, each with a card from the test list, in parallel so group
    // commit batches the writes.
    let mut customers = Vec::with_capacity(CUSTOMERS);
    let mut tasks = JoinSet::new();
    for i in 0..CUSTOMERS {
        let shop = shops[i % shops.len()].clone();
        let (family, family_kana) = FAMILY[seq.below(FAMILY.len())];
        let (given, given_kana) = GIVEN[seq.below(GIVEN.len())];
        let place = PLACES[seq.below(PLACES.len())];
        let card_index = seq.below(TEST_CARDS.len());
        let (block, lot, phone) = (seq.below(9) + 1, seq.below(30) + 1, seq.next() % 100_000_000);
        let app = app.clone();
        let address = DemoAddress {
            name: format!("{family} {given}"),
            postal_code: format!("{:03}-{:04}", 100 + block * 7, lot * 37),
            address: format!("{place}デモ町{block}-{lot}"),
            phone: format!("090{phone:08}"),
        };
        tasks.spawn(async move {
            let customer = NewCustomer {
                shop_id: None,
                tenant_id: None,
                name: SecretString::new(address.name.clone()),
                name_kana: Some(SecretString::new(format!("{family_kana} {given_kana}"))),
                postal_code: Some(SecretString::new(address.postal_code.clone())),
                address: Some(SecretString::new(address.address.clone())),
                phone: Some(SecretString::new(address.phone.clone())),
                email: Some(SecretString::new(format!("demo{i}@example.jp"))),
                fax: None,
            };
            let customer = app.create_customer(&shop, customer).await?;
            let card = CardInput {
                number: SecretString::new(TEST_CARDS[card_index].to_owned()),
                exp_month: 12,
                exp_year: 2030,
                holder_name: SecretString::new(format!("TEST CARD {card_index}")),
                tenant_id: None,
            };
            let (card, _) = app.tokenize(&shop, card).await?;
            Ok::<_, Error>((shop, customer.id.to_string(), card.token.to_string(), address))
        });
        if tasks.len() >= CONCURRENCY {
            customers.push(join_one(&mut tasks).await?);
            progress.inc(1);
        }
    }
    while !tasks.is_empty() {
        customers.push(join_one(&mut tasks).await?);
        progress.inc(1);
    }
    let mut orders = JoinSet::new();
    for _ in 0..ORDERS {
        let (shop, customer, card, address) = customers[seq.below(customers.len())].clone();
        let amount = 500 + (seq.below(200) as i64) * 250;
        let complete = seq.below(3) == 0;
        let app = app.clone();
        orders.spawn(async move {
            let input = NewOrder {
                shop_id: None,
                customer_id: customer,
                card_token: Some(card),
                amount,
                currency: "JPY".into(),
                shipping: Some(ShippingInput {
                    name: SecretString::new(address.name),
                    postal_code: Some(SecretString::new(address.postal_code)),
                    address: SecretString::new(address.address),
                    phone: Some(SecretString::new(address.phone)),
                }),
            };
            let order = app.create_order(&shop, input).await?;
            if complete {
                app.complete_order(&shop, &order.id).await?;
            }
            Ok::<_, Error>(())
        });
        if orders.len() >= CONCURRENCY {
            join_one(&mut orders).await?;
            progress.inc(1);
        }
    }
    while !orders.is_empty() {
        join_one(&mut orders).await?;
        progress.inc(1);
    }
    progress.finish_and_clear();
    Ok(tenant.id)
}

/// A demo shopper's (made-up) address, used for the customer and as the
/// shipping address of their orders.
#[derive(Clone)]
struct DemoAddress {
    name: String,
    postal_code: String,
    address: String,
    phone: String,
}

async fn join_one<T: 'static>(tasks: &mut JoinSet<Result<T>>) -> Result<T> {
    match tasks.join_next().await {
        Some(Ok(result)) => result,
        Some(Err(join)) => Err(Error::internal(join)),
        None => Err(Error::internal(std::io::Error::other("no task to join"))),
    }
}
