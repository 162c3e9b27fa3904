//! Storage conformance: the same suite against SQLite and PostgreSQL, through
//! the `Store` directly. Rows here carry opaque bytes where the vault would put
//! ciphertext; the store must treat them exactly alike.

use anshin::access::Role;
use anshin::db::credentials::KeyRow;
use anshin::db::inventory::InventoryRow;
use anshin::db::{
    CardInsert, CardRelease, CardRow, CustomerRow, KeyPurpose, OrderRow, PrincipalRow, Scope, Sealed,
    ShopRow, TenantKeyRow, TenantRow,
};
use anshin::ids::{CardToken, CustomerId, InventoryId, OrderId, PrincipalId, ShopId, TenantId};

use crate::harness::{TestApp, both_backends};

both_backends!(
    meta_init_keeps_the_first_value,
    tenants_keys_and_shops_round_trip,
    card_dedup_links_and_scopes,
    shredding_destroys_key_and_ciphertext,
    customers_are_scoped_by_tenant_and_shop,
    orders_page_in_creation_order_and_complete_once,
    principals_by_key_hash_and_disable,
    releasing_a_card_shreds_it_only_when_no_shop_holds_it,
    data_survives_reopening,
    inventories_keep_history_per_tenant,
);

fn sealed<const N: usize>(tag: u8) -> Sealed<N> {
    Sealed {
        kek_version: 1,
        wrapped_dek: vec![tag; 60],
        fields: std::array::from_fn(|i| Some(vec![tag, i as u8, 0xAB])),
    }
}

async fn tenant_and_shop(t: &TestApp) -> (TenantId, ShopId) {
    let tenant = TenantId::generate().expect("rng");
    let keys = vec![
        TenantKeyRow {
            purpose: KeyPurpose::Kek,
            version: 1,
            wrapped: vec![1; 60],
            created_at: 1,
        },
        TenantKeyRow {
            purpose: KeyPurpose::Fingerprint,
            version: 1,
            wrapped: vec![2; 60],
            created_at: 1,
        },
    ];
    t.app
        .store
        .insert_tenant(
            TenantRow {
                id: tenant.clone(),
                name: "テナント".into(),
                created_at: 10,
            },
            keys,
        )
        .await
        .expect("tenant");
    let shop = ShopId::generate().expect("rng");
    t.app
        .store
        .insert_shop(ShopRow {
            id: shop.clone(),
            tenant_id: tenant.clone(),
            name: "s".into(),
            created_at: 11,
        })
        .await
        .expect("shop");
    (tenant, shop)
}

fn card_row(tenant: &TenantId, fingerprint: u8) -> CardRow {
    CardRow {
        token: CardToken::generate().expect("rng"),
        tenant_id: tenant.clone(),
        fingerprint: Some([fingerprint; 32]),
        brand: "visa".into(),
        last4: "1111".into(),
        sealed: Some(sealed(fingerprint)),
        created_at: 20,
        deleted_at: None,
    }
}

async fn meta_init_keeps_the_first_value(t: TestApp) {
    let store = &t.app.store;
    assert_eq!(store.meta("conformance").await.expect("meta"), None);
    assert_eq!(
        store
            .meta_init("conformance", b"first".to_vec())
            .await
            .expect("init"),
        b"first"
    );
    assert_eq!(
        store
            .meta_init("conformance", b"second".to_vec())
            .await
            .expect("init"),
        b"first"
    );
    assert_eq!(
        store.meta("conformance").await.expect("meta").as_deref(),
        Some(&b"first"[..])
    );
}

async fn tenants_keys_and_shops_round_trip(t: TestApp) {
    let (tenant, shop) = tenant_and_shop(&t).await;
    let store = &t.app.store;
    let row = store.tenant(&tenant).await.expect("read").expect("exists");
    assert_eq!((row.name.as_str(), row.created_at), ("テナント", 10));
    let keys = store.tenant_keys(&tenant).await.expect("keys");
    assert_eq!(keys.len(), 2);
    assert!(
        keys.iter()
            .any(|k| k.purpose == KeyPurpose::Kek && k.version == 1 && k.wrapped == vec![1; 60])
    );
    assert_eq!(
        store.shop(&shop).await.expect("shop").expect("exists").tenant_id,
        tenant
    );
    assert_eq!(store.shops(&tenant).await.expect("shops").len(), 1);
    assert!(
        store
            .tenant(&TenantId::generate().expect("rng"))
            .await
            .expect("read")
            .is_none()
    );
    // A duplicate id is refused, not overwritten.
    let dup = TenantRow {
        id: tenant.clone(),
        name: "other".into(),
        created_at: 99,
    };
    assert!(store.insert_tenant(dup, Vec::new()).await.is_err());
    assert_eq!(
        store.tenant(&tenant).await.expect("read").expect("exists").name,
        "テナント"
    );
}

async fn card_dedup_links_and_scopes(t: TestApp) {
    let (tenant, shop) = tenant_and_shop(&t).await;
    let store = &t.app.store;
    let first = card_row(&tenant, 7);
    assert_eq!(
        store
            .insert_card(first.clone(), Some(shop.clone()), record())
            .await
            .expect("insert"),
        CardInsert::Inserted
    );
    let again = card_row(&tenant, 7);
    assert_eq!(
        store
            .insert_card(again.clone(), None, record())
            .await
            .expect("insert"),
        CardInsert::Existing {
            token: first.token.clone(),
            newly_visible: false
        }
    );
    // The creating shop is not "newly" linked; another shop is, once.
    assert_eq!(
        store
            .insert_card(card_row(&tenant, 7), Some(shop.clone()), record())
            .await
            .expect("insert"),
        CardInsert::Existing {
            token: first.token.clone(),
            newly_visible: false
        }
    );
    let second_shop = ShopId::generate().expect("rng");
    t.app
        .store
        .insert_shop(ShopRow {
            id: second_shop.clone(),
            tenant_id: tenant.clone(),
            name: "s2".into(),
            created_at: 12,
        })
        .await
        .expect("shop");
    for expected in [true, false] {
        assert_eq!(
            store
                .insert_card(card_row(&tenant, 7), Some(second_shop.clone()), record())
                .await
                .expect("insert"),
            CardInsert::Existing {
                token: first.token.clone(),
                newly_visible: expected
            }
        );
    }
    assert!(
        store
            .card(Scope::default(), &again.token)
            .await
            .expect("read")
            .is_none(),
        "the duplicate was not stored"
    );

    let read = store
        .card(
            Scope {
                tenant: Some(&tenant),
                shop: Some(&shop),
            },
            &first.token,
        )
        .await
        .expect("read")
        .expect("linked");
    let sealed = read.sealed.expect("sealed");
    assert_eq!(
        (
            sealed.kek_version,
            sealed.wrapped_dek.len(),
            sealed.fields[1].clone()
        ),
        (1, 60, Some(vec![7, 1, 0xAB]))
    );
    assert_eq!(read.fingerprint, Some([7; 32]));

    let other_shop = ShopId::generate().expect("rng");
    let other_tenant = TenantId::generate().expect("rng");
    assert!(
        store
            .card(
                Scope {
                    tenant: Some(&tenant),
                    shop: Some(&other_shop)
                },
                &first.token
            )
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        store
            .card(
                Scope {
                    tenant: Some(&other_tenant),
                    shop: None
                },
                &first.token
            )
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        store
            .card(Scope::default(), &first.token)
            .await
            .expect("read")
            .is_some(),
        "global scope sees all"
    );
    assert_eq!(
        store.card_by_fingerprint(&tenant, &[7; 32]).await.expect("fp"),
        Some(first.token.clone())
    );
    assert_eq!(
        store
            .card_by_fingerprint(&other_tenant, &[7; 32])
            .await
            .expect("fp"),
        None
    );

    store
        .update_card_details(&tenant, &first.token, vec![9], vec![8])
        .await
        .expect("update");
    let updated = store
        .card(Scope::default(), &first.token)
        .await
        .expect("read")
        .expect("exists")
        .sealed
        .expect("sealed");
    assert_eq!(
        (updated.fields[1].clone(), updated.fields[2].clone()),
        (Some(vec![9]), Some(vec![8]))
    );
    assert_eq!(
        updated.fields[0],
        Some(vec![7, 0, 0xAB]),
        "the number is untouched"
    );
}

async fn shredding_destroys_key_and_ciphertext(t: TestApp) {
    let (tenant, shop) = tenant_and_shop(&t).await;
    let store = &t.app.store;
    let card = card_row(&tenant, 3);
    store
        .insert_card(card.clone(), Some(shop.clone()), record())
        .await
        .expect("insert");
    let other_shop = ShopId::generate().expect("rng");
    assert!(
        !store
            .shred_card(
                Scope {
                    tenant: Some(&tenant),
                    shop: Some(&other_shop)
                },
                &card.token,
                50
            )
            .await
            .expect("shred")
    );
    assert!(
        store
            .shred_card(
                Scope {
                    tenant: Some(&tenant),
                    shop: Some(&shop)
                },
                &card.token,
                50
            )
            .await
            .expect("shred")
    );
    assert!(
        !store
            .shred_card(Scope::default(), &card.token, 51)
            .await
            .expect("shred"),
        "only once"
    );
    let tomb = store
        .card(Scope::default(), &card.token)
        .await
        .expect("read")
        .expect("tombstone");
    assert!(tomb.sealed.is_none() && tomb.fingerprint.is_none());
    assert_eq!(tomb.deleted_at, Some(50));
    assert_eq!(
        store.card_by_fingerprint(&tenant, &[3; 32]).await.expect("fp"),
        None
    );
    // The same number can be stored again afterwards.
    assert_eq!(
        store
            .insert_card(card_row(&tenant, 3), None, record())
            .await
            .expect("insert"),
        CardInsert::Inserted
    );
}

async fn customers_are_scoped_by_tenant_and_shop(t: TestApp) {
    let (tenant, shop) = tenant_and_shop(&t).await;
    let store = &t.app.store;
    let row = CustomerRow {
        id: CustomerId::generate().expect("rng"),
        tenant_id: tenant.clone(),
        shop_id: Some(shop.clone()),
        sealed: Some(sealed(5)),
        created_at: 30,
    };
    store.insert_customer(row.clone()).await.expect("insert");
    let read = store
        .customer(
            Scope {
                tenant: Some(&tenant),
                shop: Some(&shop),
            },
            &row.id,
        )
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(read.sealed.expect("sealed").fields[6], Some(vec![5, 6, 0xAB]));
    let other = ShopId::generate().expect("rng");
    assert!(
        store
            .customer(
                Scope {
                    tenant: Some(&tenant),
                    shop: Some(&other)
                },
                &row.id
            )
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        store
            .customer(
                Scope {
                    tenant: Some(&TenantId::generate().expect("rng")),
                    shop: None
                },
                &row.id
            )
            .await
            .expect("read")
            .is_none()
    );
}

async fn orders_page_in_creation_order_and_complete_once(t: TestApp) {
    let (tenant, shop) = tenant_and_shop(&t).await;
    let store = &t.app.store;
    let customer = CustomerRow {
        id: CustomerId::generate().expect("rng"),
        tenant_id: tenant.clone(),
        shop_id: Some(shop.clone()),
        sealed: Some(sealed(1)),
        created_at: 1,
    };
    store.insert_customer(customer.clone()).await.expect("customer");
    let card = card_row(&tenant, 4);
    store
        .insert_card(card.clone(), Some(shop.clone()), record())
        .await
        .expect("card");
    let mut ids = Vec::new();
    for i in 0..7 {
        let order = OrderRow {
            id: OrderId::generate().expect("rng"),
            tenant_id: tenant.clone(),
            shop_id: shop.clone(),
            customer_id: customer.id.clone(),
            card_token: Some(card.token.clone()),
            amount: 100 + i,
            currency: "JPY".into(),
            status: "created".into(),
            created_at: 1000 + i / 2, // ties broken by id
            completed_at: None,
        };
        store.insert_order(order.clone(), None).await.expect("order");
        ids.push((order.created_at, order.id));
    }
    ids.sort();
    let mut seen = Vec::new();
    let mut after: Option<OrderId> = None;
    loop {
        let page = store.orders(&shop, after.as_ref(), 3).await.expect("page");
        if page.is_empty() {
            break;
        }
        after = page.last().map(|o| o.order.id.clone());
        seen.extend(page.into_iter().map(|o| (o.order.created_at, o.order.id)));
    }
    assert_eq!(
        seen, ids,
        "pages return every order once, in (created_at, id) order"
    );
    let view = store
        .order(
            Scope {
                tenant: Some(&tenant),
                shop: Some(&shop),
            },
            &ids[0].1,
        )
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(
        (view.card_brand.as_deref(), view.card_last4.as_deref()),
        (Some("visa"), Some("1111"))
    );
    assert!(
        store
            .complete_order(Scope::default(), &ids[0].1, 5000)
            .await
            .expect("complete")
    );
    assert!(
        !store
            .complete_order(Scope::default(), &ids[0].1, 5001)
            .await
            .expect("complete"),
        "only once"
    );
    let done = store
        .order(Scope::default(), &ids[0].1)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(
        (done.order.status.as_str(), done.order.completed_at),
        ("completed", Some(5000))
    );
}

async fn principals_by_key_hash_and_disable(t: TestApp) {
    let store = &t.app.store;
    let row = PrincipalRow {
        id: PrincipalId::generate().expect("rng"),
        name: "p".into(),
        role: Role::Auditor,
        tenant_id: None,
        shop_id: None,
        allowed_ips: None,
        created_at: 1,
        disabled_at: None,
    };
    let key = |principal: &PrincipalId, hash: u8| KeyRow {
        key_hash: [hash; 32],
        principal_id: principal.clone(),
        created_at: 1,
        expires_at: 1_000,
        revoked_at: None,
    };
    store
        .insert_principal(row.clone(), key(&row.id, 9))
        .await
        .expect("insert");
    let (found, found_key) = store.credential(&[9; 32]).await.expect("read").expect("exists");
    assert_eq!(found.role, Role::Auditor);
    assert_eq!(found_key, key(&row.id, 9));
    assert!(store.credential(&[8; 32]).await.expect("read").is_none());
    let dup = PrincipalRow {
        id: PrincipalId::generate().expect("rng"),
        ..row.clone()
    };
    assert!(
        store
            .insert_principal(dup.clone(), key(&dup.id, 9))
            .await
            .is_err(),
        "key hashes are unique"
    );
    assert!(
        store.principal(&dup.id).await.expect("read").is_none(),
        "a principal whose key failed is not left behind"
    );
    assert!(store.disable_principal(&row.id, 7).await.expect("disable"));
    let (_, revoked) = store.credential(&[9; 32]).await.expect("read").expect("kept");
    assert_eq!(revoked.revoked_at, Some(7), "disabling revokes the keys");
    assert!(!store.disable_principal(&row.id, 8).await.expect("disable"));
    assert_eq!(
        store
            .principal(&row.id)
            .await
            .expect("read")
            .expect("exists")
            .disabled_at,
        Some(7)
    );
}

async fn data_survives_reopening(t: TestApp) {
    let (tenant, shop) = tenant_and_shop(&t).await;
    let card = card_row(&tenant, 11);
    t.app
        .store
        .insert_card(card.clone(), Some(shop), record())
        .await
        .expect("insert");
    let reopened = anshin::db::Store::open(&t.location.database_url())
        .await
        .expect("reopen");
    assert!(
        reopened
            .card(Scope::default(), &card.token)
            .await
            .expect("read")
            .is_some()
    );
}

async fn releasing_a_card_shreds_it_only_when_no_shop_holds_it(t: TestApp) {
    let (tenant, shop) = tenant_and_shop(&t).await;
    let store = &t.app.store;
    let other = ShopId::generate().expect("rng");
    store
        .insert_shop(ShopRow {
            id: other.clone(),
            tenant_id: tenant.clone(),
            name: "o".into(),
            created_at: 1,
        })
        .await
        .expect("shop");
    let card = card_row(&tenant, 21);
    store
        .insert_card(card.clone(), Some(shop.clone()), record())
        .await
        .expect("insert");
    store
        .insert_card(card_row(&tenant, 21), Some(other.clone()), record())
        .await
        .expect("link");
    let stranger = ShopId::generate().expect("rng");
    assert_eq!(
        store
            .release_card(&tenant, &stranger, &card.token, 5)
            .await
            .expect("release"),
        CardRelease::NotFound
    );
    assert_eq!(
        store
            .release_card(&tenant, &shop, &card.token, 5)
            .await
            .expect("release"),
        CardRelease::Released
    );
    assert_eq!(
        store
            .release_card(&tenant, &shop, &card.token, 6)
            .await
            .expect("release"),
        CardRelease::NotFound
    );
    let live = store
        .card(
            Scope {
                tenant: Some(&tenant),
                shop: Some(&other),
            },
            &card.token,
        )
        .await
        .expect("read");
    assert!(
        live.is_some_and(|c| c.sealed.is_some()),
        "the other shop still holds it"
    );
    assert_eq!(
        store
            .release_card(&tenant, &other, &card.token, 7)
            .await
            .expect("release"),
        CardRelease::Shredded
    );
    let tomb = store
        .card(Scope::default(), &card.token)
        .await
        .expect("read")
        .expect("tombstone");
    assert!(tomb.sealed.is_none() && tomb.deleted_at == Some(7));
}

#[tokio::test]
async fn postgres_without_durable_commits_is_refused() {
    let Some(t) = TestApp::new(crate::harness::Backend::Postgres).await else {
        return;
    };
    let url = t.location.database_url.clone().expect("url");
    let unsafe_url = format!("{url}%20-c%20synchronous_commit%3Doff");
    let err = anshin::db::Store::open(&unsafe_url).await.err().expect("refused");
    assert!(err.to_string().contains("synchronous_commit"), "{err}");
}

/// The audit entry a card insert appends in its own transaction, as the vault
/// builds it (here with fixed contents: the store only stores it).
fn record() -> anshin::db::audit::EntryFor<CardToken> {
    Box::new(|token: &CardToken| {
        let entry = format!(r#"{{"v":1,"event":"card.tokenize","resources":["{token}"]}}"#).into_bytes();
        Ok(anshin::db::audit::NewAuditEntry {
            time_ms: 0,
            tenant_id: None,
            principal_id: None,
            kind: "card.tokenize",
            outcome: "success",
            leaf_hash: anshin_crypto::merkle::leaf_hash(&entry),
            entry,
            subjects: Vec::new(),
        })
    })
}

async fn inventories_keep_history_per_tenant(t: TestApp) {
    let store = &t.app.store;
    let (tenant, _) = tenant_and_shop(&t).await;
    let (other, _) = tenant_and_shop(&t).await;
    let operator = PrincipalRow {
        id: PrincipalId::generate().expect("rng"),
        name: "scanner".into(),
        role: Role::Operator,
        tenant_id: Some(tenant.clone()),
        shop_id: None,
        allowed_ips: None,
        created_at: 1,
        disabled_at: None,
    };
    let key = KeyRow {
        key_hash: [42; 32],
        principal_id: operator.id.clone(),
        created_at: 1,
        expires_at: 1_000,
        revoked_at: None,
    };
    store
        .insert_principal(operator.clone(), key)
        .await
        .expect("principal");
    let row = |tenant: &TenantId, at: i64, body: &str| InventoryRow {
        id: InventoryId::generate().expect("rng"),
        tenant_id: tenant.clone(),
        uploaded_by: operator.id.clone(),
        uploaded_at: at,
        scanned_at: format!("2026-12-0{at}T00:00:00Z"),
        locations: 3,
        findings: u64::try_from(at).expect("small") * 10,
        body: Some(body.to_owned()),
    };
    assert!(store.latest_inventory(&tenant).await.expect("read").is_none());
    let (first, second) = (row(&tenant, 1, "{\"n\":1}"), row(&tenant, 2, "{\"n\":2}"));
    // Stored out of order: "latest" is by upload time, not by insertion.
    store.insert_inventory(second.clone()).await.expect("insert");
    store.insert_inventory(first.clone()).await.expect("insert");
    store
        .insert_inventory(row(&other, 3, "{}"))
        .await
        .expect("insert");
    assert_eq!(
        store.latest_inventory(&tenant).await.expect("read"),
        Some(second.clone())
    );
    let listed = store.list_inventories(&tenant, 10).await.expect("list");
    let strip = |r: &InventoryRow| InventoryRow {
        body: None,
        ..r.clone()
    };
    assert_eq!(
        listed,
        vec![strip(&second), strip(&first)],
        "newest first, without bodies"
    );
    assert_eq!(store.list_inventories(&tenant, 1).await.expect("list").len(), 1);
    assert_eq!(store.list_inventories(&other, 10).await.expect("list").len(), 1);
}
