//! A market of mixed versions on a real anvil (docs/protocol/versions.md): real nodes of
//! version 1.0.0 (offers without extensions) and of this build's 1.1.0 (offers that carry the
//! provider's protocol version as an extension record, added by 1.1) on loopback. Offers
//! gossip both ways, jobs run both ways (an old buyer with a new provider, a new buyer with an
//! old provider), their vouchers are paid and claimed on chain both ways; a node of another
//! major version is refused.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use sietch_market::*;
use sietch_node::net::version::CURRENT;
use sietch_node::service::Node;
use sietch_testkit::devnet::{Devnet, DevnetConfig, E18};
use sietch_testkit::fnv;
use sietch_testkit::net::{another_major_is_refused, eventually, tcp_addr};
use sietch_testkit::system::get;

/// The offer of `provider` in `node`'s book, once it is there.
async fn offer_seen(node: &Node, provider: &Node) -> Signed<Offer> {
    let at = provider.evm_address;
    let find = || {
        let book = node.net.book();
        let book = book.lock().unwrap();
        book.iter().find(|o| o.payload.evm_address == at).cloned()
    };
    eventually(
        "the offer crosses the versions",
        Duration::from_secs(30),
        || {
            let found = find().is_some();
            async move { found }
        },
    )
    .await;
    find().unwrap()
}

/// `buyer` (a provider node buying) runs a job; the only other provider runs it. Returns the
/// amount paid.
async fn buy(buyer: &Node, seller: &Node, k: u32) -> U256 {
    let module = fnv::hash_guest(0);
    let input = format!("job {k} across versions").into_bytes();
    buyer.store.blobs().put(&module).unwrap();
    buyer.store.blobs().put(&input).unwrap();
    let done = buyer
        .buyer
        // Never sampled in practice (1 per million), so no third provider is needed for a
        // re-run; the value the stake covers at that rate bounds the price cap.
        .submit(fnv::spec(&module, &input, 1, E18 / 1_000))
        .await
        .unwrap_or_else(|e| panic!("job {k}: {e}"));
    assert_eq!(done.provider, seller.evm_address, "job {k} ran elsewhere");
    assert_eq!(
        String::from_utf8_lossy(&done.result.stdout),
        fnv::hex(&input)
    );
    assert!(done.paid > U256::ZERO, "job {k} was not paid");
    done.paid
}

/// Waits until every voucher `buyer` signed is claimed on chain by its provider, and returns
/// what was claimed.
async fn claimed(buyer: &Node, paid: U256) -> U256 {
    buyer.buyer.opens_settled(Duration::from_secs(30)).await;
    let channels = buyer.buyer.channels();
    assert!(!channels.is_empty());
    let signed: U256 = channels.iter().map(|c| c.2).sum();
    assert!(signed >= paid, "vouchers {signed} < paid {paid}");
    let chain = buyer.chain.clone().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut got = U256::ZERO;
        for (id, ..) in &channels {
            got += U256::from(chain.channel(*id).await.unwrap().paid);
        }
        if got == signed {
            return got;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "claimed {got} of {signed} after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anvil_nodes_of_two_minor_versions_trade_and_settle_both_ways() {
    assert_eq!(
        (CURRENT.major, CURRENT.minor),
        (1, 1),
        "update OLD and this test"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = DevnetConfig::new(2, dir.path());
    // provider-0 and the buyer speak 1.0.0; provider-1 this build's 1.1.0.
    cfg.tweak = |name, c| {
        if name != "provider-1" {
            c.test_protocol_version = "1.0.0".into();
        }
    };
    let net = Devnet::start(cfg).await.unwrap();
    let (old, new) = (&net.providers[0], &net.providers[1]);
    let new_version = ProtocolVersion {
        major: CURRENT.major,
        minor: CURRENT.minor,
        patch: CURRENT.patch,
    };

    // Offers, both ways. The new provider's offer carries its version, signed with the
    // rest: the old nodes hold it, its signature checks, and it re-encodes to bytes that
    // decode to the same offer (what they forward is what was signed).
    for holder in [old, &net.buyer] {
        let o = offer_seen(holder, new).await;
        assert_eq!(o.protocol_version(), Some(new_version));
        assert!(!o.extensions.is_empty());
        assert_eq!(Signed::<Offer>::decode(&o.encode()).unwrap(), o);
        assert!(o.verify().is_ok());
    }
    let o = offer_seen(new, old).await;
    assert_eq!(o.protocol_version(), None, "a 1.0 offer says no version");
    assert!(o.extensions.is_empty());
    assert!(o.verify().is_ok());
    // What the field is for: a node's API shows which version each provider speaks.
    let offers = get(&net.buyer.api.to_string(), "/api/v1/offers")
        .await
        .unwrap();
    let version_of = |who: &Node| {
        let at = who.evm_address.to_string();
        offers
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["evm_address"] == at.as_str())
            .map(|o| o["version"].clone())
    };
    assert_eq!(version_of(new), Some(new_version.to_string().into()));
    assert_eq!(version_of(old), Some(serde_json::Value::Null));

    // Jobs and payments: old buyer → new provider, new buyer → old provider.
    let paid_by_old = buy(old, new, 1).await;
    let paid_by_new = buy(new, old, 2).await;
    assert!(claimed(old, paid_by_old).await > U256::ZERO);
    assert!(claimed(new, paid_by_new).await > U256::ZERO);

    // No peer of the same major was refused or had a message rejected.
    for n in [old, new, &net.buyer] {
        let s = n.net.stats().await.unwrap();
        assert_eq!(s.peers_refused, 0, "a peer of the same major was refused");
        assert_eq!(s.rejected, 0, "a message was rejected");
    }

    // A node of the next major version is refused by the market's nodes.
    let addr = tcp_addr(&new.net, 1).await;
    let other = another_major_is_refused(&new.net, addr, 90).await;
    assert!(
        !new.net
            .peers()
            .await
            .unwrap()
            .contains(&other.net.peer_id()),
        "the other major is still connected"
    );
    net.shutdown().await;
}
