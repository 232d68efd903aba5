//! `sietch devnet --hostile`: what the hostile chain is doing, said at start, and what it did,
//! said when the devnet settles (after it is calmed, so that the settlement reads a still chain).

use std::sync::atomic::Ordering;

use sietch_testkit::devnet::{Devnet, HOSTILE_CONFIRMATIONS};

/// Says what a hostile devnet does to its nodes.
pub(super) fn announce(net: &Devnet) {
    if let Some(p) = &net.proxy {
        println!(
            "hostile  the nodes reach the chain through {} (3% of requests dropped) and wait for \
             {HOSTILE_CONFIRMATIONS} confirmations; anvil reorganizes up to \
             {HOSTILE_CONFIRMATIONS} blocks and spikes its base fee at random",
            p.url()
        );
    }
}

/// Stops a hostile devnet's reorganizations, fee spikes and dropped requests, and says what
/// the nodes survived.
pub(super) async fn calm(net: &mut Devnet) {
    let Some(chaos) = net.chaos.take() else {
        return;
    };
    let r = chaos.stop().await;
    let dropped = net.proxy.as_ref().map_or(0, |p| {
        p.set_drop_ppm(0);
        p.set_down(false);
        p.stats().failures()
    });
    let connections = net
        .proxy
        .as_ref()
        .map_or(0, |p| p.stats().connections.load(Ordering::Relaxed));
    println!(
        "hostile chain survived: {} reorganizations (deepest {} blocks; {} transactions \
         dropped, {} taken back), {} base fee spikes (highest {} gwei), {dropped} RPC requests \
         dropped over {connections} connections",
        r.reorgs,
        r.deepest,
        r.txs_dropped,
        r.txs_resent,
        r.fee_spikes,
        r.highest_base_fee / 1_000_000_000,
    );
}
