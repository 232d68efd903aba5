//! The event stream's lines, JSON and delivery.

use super::*;

#[test]
fn a_peers_text_is_printed_escaped() {
    let e = NodeEvent::Retrying {
        job: B256::repeat_byte(0xab),
        provider: Address::repeat_byte(0x11),
        reason: "refused: \x1b]0;pwned\x07\x1b[2J".into(),
    };
    let line = e.to_string();
    assert!(!line.contains('\x1b') && !line.contains('\x07'), "{line:?}");
    assert!(line.contains("\\u{1b}]0;pwned"), "{line}");
}

#[test]
fn lines_start_with_their_word_and_json_names_its_kind() {
    let peer = PeerId::random();
    let address: Multiaddr = "/ip4/1.2.3.4/tcp/1"
        .parse()
        .unwrap_or_else(|_| Multiaddr::empty());
    let e = NodeEvent::Connected { peer, address };
    assert_eq!(
        e.to_string(),
        format!("connected {peer} /ip4/1.2.3.4/tcp/1")
    );
    let json = serde_json::to_value(&e).unwrap_or_default();
    assert_eq!(json["kind"], "connected");
    assert_eq!(json["peer"], peer.to_string());
    assert_eq!(json["address"], "/ip4/1.2.3.4/tcp/1");
    assert_eq!(NodeEvent::Ready.to_string(), "ready");
}

/// Typed fields are written once, the same way in JSON and in the line: ids as `0x` hex,
/// addresses checksummed, amounts in decimal base units, outcomes and ends by name.
#[test]
fn typed_fields_are_written_as_people_and_scripts_read_them() {
    let job = B256::repeat_byte(0x0f);
    let provider: Address = "0x52908400098527886E0F7030069857D2E4169EE7"
        .parse()
        .unwrap_or_default();
    let amount = U256::from(10u128.pow(20)) + U256::from(7u8);
    let e = NodeEvent::ResultIn {
        job,
        outcome: Outcome::Exited { code: 3 },
        amount,
        fuel: 9,
    };
    let json = serde_json::to_value(&e).unwrap_or_default();
    assert_eq!(json["job"], format!("0x{}", "0f".repeat(32)));
    assert_eq!(json["amount"], "100000000000000000007");
    assert_eq!(json["outcome"], Outcome::Exited { code: 3 }.to_string());
    assert!(
        e.to_string().contains("charge 100000000000000000007"),
        "{e}"
    );
    let sent = NodeEvent::Sent {
        job,
        provider,
        attempt: 1,
    };
    let json = serde_json::to_value(&sent).unwrap_or_default();
    assert_eq!(
        json["provider"],
        "0x52908400098527886E0F7030069857D2E4169EE7"
    );
    let done = NodeEvent::Finished {
        job,
        state: JobEnd::Withheld,
        millis: 1,
    };
    assert_eq!(
        serde_json::to_value(&done).unwrap_or_default()["state"],
        "withheld"
    );
    let settled = NodeEvent::TicketSettled {
        ticket: job,
        outcome: TicketOutcome::from_code(2),
    };
    let json = serde_json::to_value(&settled).unwrap_or_default();
    assert_eq!(json["outcome"], "provider_wrong");
    assert_eq!(TicketOutcome::from_code(9), TicketOutcome::Undecided);
}

#[tokio::test]
async fn a_listener_hears_what_comes_after_it() {
    let events = Events::new();
    events.emit(NodeEvent::Ready);
    let mut rx = events.subscribe();
    events.emit(NodeEvent::ShuttingDown);
    assert_eq!(rx.recv().await.ok(), Some(NodeEvent::ShuttingDown));
}
