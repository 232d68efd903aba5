//! NAT traversal between real `sietch` node processes in Linux network namespaces.
//!
//! The test builds its own namespaces (it must run as root with `ip` from iproute2), so both
//! tests are `#[ignore]`d: a plain `cargo nextest run` reports them as skipped. They run where
//! root is expected, `SIETCH_REQUIRE_ROOT=1 cargo nextest run -p sietch-cli --test nat
//! --run-ignored only` (what `scripts/test.sh` does when it runs as root, as CI does), and there
//! a machine that cannot build the namespaces fails them, saying why. Two topologies:
//!
//! * **routed-off** (`nat_relay_only_without_a_path`): A and B each share a link with the
//!   relay R, and R does not forward. A and B have no path to each other at all, so they can
//!   only talk through the relay; hole punching must fail and no direct connection may appear.
//! * **behind NAT** (`nat_hole_punch_through_masquerade`): A and B sit on private subnets
//!   behind routers RA and RB that masquerade (iptables `MASQUERADE`, new inbound connections
//!   dropped) onto a small "internet" routed by R, where the relay runs. A and B cannot reach
//!   each other's addresses, but the NATs keep source ports and let answers in, so DCUtR hole
//!   punching can open a direct connection between the routers' public addresses. This
//!   variant needs `iptables` (scripts/setup.sh installs it); without it, it fails.
//!
//! In both, the relay runs with `--relay-server`, A and B listen through it (`--relay`), and
//! B dials A through the relay circuit (`--bootstrap <relay>/p2p-circuit/p2p/<A>`). Namespaces
//! are named after the test process's pid, removed on every exit path (a drop guard), and
//! left-overs of killed runs are removed at the next start.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::time::{Duration, Instant};

use sietch_testkit::process::{Node, Nodes, Spec, connected_to, peer_line, run, word};

/// Prefix of every namespace this test makes; followed by the pid of the test process.
const PREFIX: &str = "sietchnat";
/// How long the nodes get for each step (a loaded 2-core machine builds while we test).
const STEP: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------

fn ip(args: &[&str]) -> Result<String, String> {
    run("ip", args)
}

/// Runs `program args` inside namespace `ns`.
fn in_ns(ns: &str, program: &str, args: &[&str]) -> Result<String, String> {
    let mut all = vec!["netns", "exec", ns, program];
    all.extend_from_slice(args);
    ip(&all)
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// The tests run only where root is expected (they are ignored otherwise), so a machine that
/// cannot build their namespaces fails them.
fn cannot_run(test: &str, why: &str) -> ! {
    panic!(
        "{test} runs only where root is expected (SIETCH_REQUIRE_ROOT=1, --run-ignored), and \
         cannot build its network namespaces here: {why}"
    );
}

// ---------------------------------------------------------------------------------------
// Namespaces
// ---------------------------------------------------------------------------------------

/// Network namespaces made by this test; deleted on drop (their veths go with them).
struct Lab {
    prefix: String,
    made: Vec<String>,
}

impl Lab {
    /// A lab for `tag`, or why namespaces cannot be made here.
    fn new(tag: &str) -> Result<Self, String> {
        if !is_root() {
            return Err("not running as root: network namespaces need CAP_SYS_ADMIN".into());
        }
        ip(&["-V"]).map_err(|e| format!("`ip` (iproute2) is not usable: {e}"))?;
        remove_stale_namespaces();
        let mut lab = Self {
            prefix: format!("{PREFIX}{}{tag}", std::process::id()),
            made: Vec::new(),
        };
        // The first namespace tells whether this machine allows them at all.
        lab.ns("probe")
            .map_err(|e| format!("cannot create a network namespace: {e}"))?;
        Ok(lab)
    }

    /// Makes namespace `role` with loopback up; returns its full name.
    fn ns(&mut self, role: &str) -> Result<String, String> {
        let name = format!("{}{role}", self.prefix);
        ip(&["netns", "add", &name])?;
        self.made.push(name.clone());
        ip(&["-n", &name, "link", "set", "lo", "up"])?;
        Ok(name)
    }

    /// A veth pair between two namespaces, each end named `dev_*`, addressed (`a.b.c.d/n`)
    /// and up.
    fn link(
        &self,
        (ns_a, dev_a, addr_a): (&str, &str, &str),
        (ns_b, dev_b, addr_b): (&str, &str, &str),
    ) -> Result<(), String> {
        ip(&[
            "link", "add", "name", dev_a, "netns", ns_a, "type", "veth", "peer", "name", dev_b,
            "netns", ns_b,
        ])?;
        for (ns, dev, addr) in [(ns_a, dev_a, addr_a), (ns_b, dev_b, addr_b)] {
            ip(&["-n", ns, "addr", "add", addr, "dev", dev])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        Ok(())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for name in self.made.iter().rev() {
            if let Err(e) = ip(&["netns", "del", name]) {
                eprintln!("nat test: could not delete namespace {name}: {e}");
            }
        }
    }
}

/// Deletes namespaces left by runs of this test whose process is gone (killed by a timeout,
/// so their drop guards never ran).
fn remove_stale_namespaces() {
    let Ok(list) = ip(&["netns", "list"]) else {
        return;
    };
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if !pid.is_empty() && !Path::new("/proc").join(&pid).exists() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

fn set_forwarding(ns: &str, on: bool) -> Result<(), String> {
    in_ns(
        ns,
        "sh",
        &[
            "-c",
            &format!("echo {} > /proc/sys/net/ipv4/ip_forward", u8::from(on)),
        ],
    )
    .map(drop)
}

/// What a TCP connect from a namespace found.
#[derive(Debug)]
enum Reach {
    /// Something answered: a connection, or a refusal from the host itself.
    Yes(String),
    /// No route, unreachable, or silence.
    No(String),
}

/// Tries a TCP connection from `ns` to `ip:port` (bash's /dev/tcp, 3 s).
fn tcp_probe(ns: &str, ip_addr: &str, port: u16) -> Reach {
    let script = format!("exec 3<>/dev/tcp/{ip_addr}/{port}");
    match in_ns(ns, "timeout", &["3", "bash", "-c", &script]) {
        Ok(_) => Reach::Yes("connected".into()),
        Err(e) if e.contains("Connection refused") => Reach::Yes(e),
        Err(e) if e.contains("exit status: 124") => Reach::No("no answer within 3 s".into()),
        Err(e) => Reach::No(e),
    }
}

fn assert_reachable(ns: &str, ip_addr: &str, why: &str) {
    match tcp_probe(ns, ip_addr, 9) {
        Reach::Yes(_) => {}
        Reach::No(e) => panic!("topology broken: {why}: {ns} cannot reach {ip_addr}: {e}"),
    }
}

fn assert_unreachable(ns: &str, ip_addr: &str, why: &str) {
    match tcp_probe(ns, ip_addr, 9) {
        Reach::No(_) => {}
        Reach::Yes(e) => panic!("topology broken: {why}: {ns} reaches {ip_addr}: {e}"),
    }
}

/// The namespaces of one topology and the addresses that matter.
struct Topology {
    lab: Lab,
    relay_ns: String,
    a_ns: String,
    b_ns: String,
    /// A's own address (what B must not reach).
    a_addr: &'static str,
    b_addr: &'static str,
    /// The relay's address as A and as B reach it.
    relay_for_a: &'static str,
    relay_for_b: &'static str,
    /// The public (router) addresses of A and B behind NAT; `None` without NAT.
    a_public: Option<&'static str>,
    b_public: Option<&'static str>,
}

/// A -- R -- B, R not forwarding: no path between A and B.
fn routed_off() -> Result<Topology, String> {
    let mut lab = Lab::new("o")?;
    let a = lab.ns("a")?;
    let r = lab.ns("r")?;
    let b = lab.ns("b")?;
    lab.link((&a, "eth0", "10.1.0.2/24"), (&r, "to-a", "10.1.0.1/24"))?;
    lab.link((&b, "eth0", "10.2.0.2/24"), (&r, "to-b", "10.2.0.1/24"))?;
    set_forwarding(&r, false)?;
    Ok(Topology {
        lab,
        relay_ns: r,
        a_ns: a,
        b_ns: b,
        a_addr: "10.1.0.2",
        b_addr: "10.2.0.2",
        relay_for_a: "10.1.0.1",
        relay_for_b: "10.2.0.1",
        a_public: None,
        b_public: None,
    })
}

/// A -- RA(NAT) -- R -- RB(NAT) -- B: R routes the "internet" between RA and RB; RA and RB
/// masquerade their private subnets and drop new inbound connections.
fn behind_nat() -> Result<Topology, String> {
    let mut lab = Lab::new("n")?;
    let a = lab.ns("a")?;
    let ra = lab.ns("ra")?;
    let r = lab.ns("r")?;
    let rb = lab.ns("rb")?;
    let b = lab.ns("b")?;
    lab.link((&a, "eth0", "10.0.1.2/24"), (&ra, "lan", "10.0.1.1/24"))?;
    lab.link(
        (&ra, "wan", "198.18.1.2/24"),
        (&r, "to-ra", "198.18.1.1/24"),
    )?;
    lab.link(
        (&r, "to-rb", "198.18.2.1/24"),
        (&rb, "wan", "198.18.2.2/24"),
    )?;
    lab.link((&rb, "lan", "10.0.2.1/24"), (&b, "eth0", "10.0.2.2/24"))?;
    ip(&["-n", &a, "route", "add", "default", "via", "10.0.1.1"])?;
    ip(&["-n", &b, "route", "add", "default", "via", "10.0.2.1"])?;
    ip(&["-n", &ra, "route", "add", "default", "via", "198.18.1.1"])?;
    ip(&["-n", &rb, "route", "add", "default", "via", "198.18.2.1"])?;
    set_forwarding(&r, true)?;
    for router in [&ra, &rb] {
        set_forwarding(router, true)?;
        // A home router: masquerade the LAN, and let in from the WAN only what answers
        // traffic from inside, both to the LAN (FORWARD) and to the router itself (INPUT).
        // Dropping unsolicited packets to the router in INPUT also matters for hole
        // punching: a packet dropped there never gets a confirmed conntrack entry, so a
        // peer's punch that arrives before ours left does not take the tuple our own
        // outgoing packet needs (which would make MASQUERADE pick another port).
        let mut rules = vec!["-t nat -A POSTROUTING -o wan -j MASQUERADE".to_owned()];
        for chain in ["FORWARD", "INPUT"] {
            rules.push(format!(
                "-A {chain} -i wan -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT"
            ));
            rules.push(format!("-A {chain} -i wan -j DROP"));
        }
        for rule in &rules {
            let args: Vec<&str> = rule.split(' ').collect();
            in_ns(router, "iptables", &args)
                .map_err(|e| format!("the NAT routers need iptables: {e}"))?;
        }
    }
    Ok(Topology {
        lab,
        relay_ns: r,
        a_ns: a,
        b_ns: b,
        a_addr: "10.0.1.2",
        b_addr: "10.0.2.2",
        relay_for_a: "198.18.1.1",
        relay_for_b: "198.18.2.1",
        a_public: Some("198.18.1.2"),
        b_public: Some("198.18.2.2"),
    })
}

impl Topology {
    /// Checks with TCP probes that A and B reach the relay but not each other.
    fn check(&self) {
        assert_reachable(&self.a_ns, self.relay_for_a, "A must reach the relay");
        assert_reachable(&self.b_ns, self.relay_for_b, "B must reach the relay");
        assert_unreachable(&self.a_ns, self.b_addr, "A must not reach B directly");
        assert_unreachable(&self.b_ns, self.a_addr, "B must not reach A directly");
        if let (Some(a_pub), Some(b_pub)) = (self.a_public, self.b_public) {
            // Nothing unsolicited gets in through the routers either.
            assert_unreachable(&self.a_ns, b_pub, "A must not reach B's router");
            assert_unreachable(&self.b_ns, a_pub, "B must not reach A's router");
        }
        eprintln!(
            "nat test: topology checked ({} namespaces): A and B reach the relay, not each other",
            self.lab.made.len()
        );
    }
}

// ---------------------------------------------------------------------------------------
// Nodes (sietch_testkit::process runs them)
// ---------------------------------------------------------------------------------------

/// `sietch node run` for this test: in namespace `ns`, mDNS off, AutoNAT on private
/// addresses, hole punching and relaying logged.
fn start(name: &str, ns: &str, args: &[String]) -> Node {
    let mut all = vec!["--no-mdns".to_owned(), "--autonat-private".to_owned()];
    all.extend_from_slice(args);
    Node::start(Spec {
        name: name.to_owned(),
        ns: Some(ns.to_owned()),
        args: all,
        rust_log: "info,libp2p_dcutr=debug,libp2p_relay=debug,libp2p_swarm=debug,sietch_node=debug"
            .to_owned(),
    })
}

/// `hole-punch <peer> ok|failed <detail>` for `peer`: (ok, whole line).
fn hole_punch_with(peer: &str) -> impl Fn(&str) -> Option<(bool, String)> + '_ {
    move |line| {
        (word(line, 0)? == "hole-punch" && word(line, 1)? == peer)
            .then(|| (word(line, 2) == Some("ok"), line.to_owned()))
    }
}

/// Whether a printed connection address is relayed: it holds `/p2p-circuit`, or (the
/// accepting side of a relayed connection, which libp2p gives no transport address) it is
/// nothing but `/p2p/<peer>`.
fn is_relayed(addr: &str) -> bool {
    addr.contains("/p2p-circuit") || (addr.starts_with("/p2p/") && addr.matches('/').count() == 2)
}

/// The port of a `listening /ip4/<ip>/<proto>/<port>...` line on `ip_addr` over `proto`
/// (`tcp` or `udp` for QUIC).
fn listen_port<'a>(ip_addr: &'a str, proto: &'a str) -> impl Fn(&str) -> Option<u16> + 'a {
    move |line| {
        let addr = line.strip_prefix("listening ")?;
        let rest = addr.strip_prefix(&format!("/ip4/{ip_addr}/{proto}/"))?;
        let port = rest.split('/').next()?.parse().ok()?;
        (!is_relayed(addr)).then_some(port)
    }
}

// ---------------------------------------------------------------------------------------
// The scenario
// ---------------------------------------------------------------------------------------

/// Relay in R, A and B listening through it, B dialing A over the circuit. Returns the
/// running nodes (relay, A, B) and the peer ids of A and B, once A and B are connected over
/// the relay on both sides.
fn relayed_pair(t: &Topology) -> (Nodes, String, String) {
    let listen = [
        "--listen".to_owned(),
        "/ip4/0.0.0.0/tcp/0".to_owned(),
        "--listen".to_owned(),
        "/ip4/0.0.0.0/udp/0/quic-v1".to_owned(),
    ];
    // The relay listens on its addresses by name, so that they are all known (and printed)
    // at once.
    let mut relay_args = vec!["--relay-server".to_owned()];
    for ip_addr in [t.relay_for_a, t.relay_for_b] {
        relay_args.push("--listen".into());
        relay_args.push(format!("/ip4/{ip_addr}/tcp/0"));
        relay_args.push("--listen".into());
        relay_args.push(format!("/ip4/{ip_addr}/udp/0/quic-v1"));
    }
    let mut nodes = Nodes(vec![start("relay", &t.relay_ns, &relay_args)]);
    let relay_id = nodes.wait_for(0, "its `peer` line", STEP, peer_line);
    let quic_a = nodes.wait_for(0, "its QUIC listen address", STEP, |l| {
        listen_port(t.relay_for_a, "udp")(l)
    });
    let quic_b = nodes.wait_for(0, "its QUIC listen address", STEP, |l| {
        listen_port(t.relay_for_b, "udp")(l)
    });
    // A and B reach the relay over QUIC: one UDP socket for listening and dialing, so the
    // address the relay observes is the one hole punching needs.
    let relay_of_a = format!("/ip4/{}/udp/{quic_a}/quic-v1/p2p/{relay_id}", t.relay_for_a);
    let relay_of_b = format!("/ip4/{}/udp/{quic_b}/quic-v1/p2p/{relay_id}", t.relay_for_b);

    let mut a_args = listen.to_vec();
    a_args.extend(["--relay".to_owned(), relay_of_a]);
    nodes.0.push(start("A", &t.a_ns, &a_args));
    let a_id = nodes.wait_for(1, "its `peer` line", STEP, peer_line);
    wait_reservation(&mut nodes, &relay_id);

    let mut b_args = listen.to_vec();
    b_args.extend([
        "--relay".to_owned(),
        relay_of_b.clone(),
        "--bootstrap".to_owned(),
        format!("{relay_of_b}/p2p-circuit/p2p/{a_id}"),
    ]);
    nodes.0.push(start("B", &t.b_ns, &b_args));
    let b_id = nodes.wait_for(2, "its `peer` line", STEP, peer_line);

    // A relay v2 server serves reservations and circuits only once its own address is
    // confirmed (AutoNAT, through the peers that connect to it: here A and B), and a node
    // whose reservation was refused does not ask again. So the first round may find the
    // relay not yet serving; then A and B start again, as an operator would restart them.
    let relayed = |l: &str| connected_to(&b_id)(l).filter(|a| is_relayed(a));
    let deadline = Instant::now() + Duration::from_secs(20);
    while nodes.0[1].find(relayed).is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    if nodes.0[1].find(relayed).is_none() {
        eprintln!(
            "nat test: no relayed connection in the first round (the relay was not serving \
             yet); restarting A and B"
        );
        nodes.0[2].stop();
        nodes.0[1].restart();
        wait_reservation(&mut nodes, &relay_id);
        nodes.0[2].restart();
    }

    let a_sees = nodes.wait_for(
        1,
        &format!("a relayed connection from B ({b_id}) over /p2p-circuit"),
        STEP,
        |l| connected_to(&b_id)(l).filter(|a| is_relayed(a)),
    );
    let b_sees = nodes.wait_for(
        2,
        &format!("a relayed connection to A ({a_id}) over /p2p-circuit"),
        STEP,
        |l| connected_to(&a_id)(l).filter(|a| is_relayed(a)),
    );
    eprintln!("nat test: relayed connection: A sees B at {a_sees}, B sees A at {b_sees}");
    (nodes, a_id, b_id)
}

/// Waits until node A (index 1) has its reservation on the relay: a listen address through
/// the relay, or (the node prints its addresses once, at start) its connection to the relay
/// and a moment for the reservation.
fn wait_reservation(nodes: &mut Nodes, relay_id: &str) {
    let started = Instant::now();
    let mut seen_relay: Option<Instant> = None;
    loop {
        if nodes.0[1]
            .find(|l| (l.starts_with("listening ") && is_relayed(l)).then_some(()))
            .is_some()
        {
            return;
        }
        if seen_relay.is_none() && nodes.0[1].find(connected_to(relay_id)).is_some() {
            seen_relay = Some(Instant::now());
        }
        if seen_relay.is_some_and(|s| s.elapsed() > Duration::from_secs(3)) {
            return;
        }
        if started.elapsed() > STEP {
            panic!(
                "node A never connected to the relay (no `connected {relay_id} ...` line)\n{}",
                nodes.dump()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Direct (not relayed) connections a node printed to `peer`.
fn direct_to(node: &Node, peer: &str) -> Vec<String> {
    node.stdout()
        .iter()
        .filter_map(|l| connected_to(peer)(l))
        .filter(|a| !is_relayed(a))
        .collect()
}

#[test]
#[ignore = "needs root and network namespaces: SIETCH_REQUIRE_ROOT=1 cargo nextest run -p sietch-cli --test nat --run-ignored only"]
fn nat_relay_only_without_a_path() {
    let name = "nat_relay_only_without_a_path";
    let t = match routed_off() {
        Ok(t) => t,
        Err(why) => cannot_run(name, &why),
    };
    t.check();
    let (mut nodes, a_id, b_id) = relayed_pair(&t);

    // DCUtR tries (each side learns the other's observed address through the relay) and
    // must fail: no packet goes from A to B but through the relay. A, which accepted the
    // relayed connection, drives the attempts and reports their end.
    let (_, (ok, line)) = nodes.wait_any(
        &[1, 2],
        "the end of the hole punch (a `hole-punch <peer> ...` line)",
        STEP,
        |l| hole_punch_with(&b_id)(l).or_else(|| hole_punch_with(&a_id)(l)),
    );
    if ok {
        panic!(
            "a hole punch succeeded where no path exists: {line}\n{}",
            nodes.dump()
        );
    }
    for (i, peer) in [(1, &b_id), (2, &a_id)] {
        let direct = direct_to(&nodes.0[i], peer);
        assert!(
            direct.is_empty(),
            "a direct connection appeared where no path exists: {direct:?}\n{}",
            nodes.dump()
        );
    }
    eprintln!(
        "nat test: without a path, A and B talk through the relay only; hole punching failed as \
         it must: {line}"
    );
    drop(nodes);
    drop(t);
}

#[test]
#[ignore = "needs root and network namespaces: SIETCH_REQUIRE_ROOT=1 cargo nextest run -p sietch-cli --test nat --run-ignored only"]
fn nat_hole_punch_through_masquerade() {
    let name = "nat_hole_punch_through_masquerade";
    let t = match behind_nat() {
        Ok(t) => t,
        Err(why) => cannot_run(name, &why),
    };
    t.check();
    let (mut nodes, a_id, b_id) = relayed_pair(&t);

    // Either side may report the outcome first.
    let (_, (ok, line)) = nodes.wait_any(
        &[1, 2],
        "the end of the hole punch (a `hole-punch <peer> ...` line)",
        STEP,
        |l| hole_punch_with(&b_id)(l).or_else(|| hole_punch_with(&a_id)(l)),
    );
    if !ok {
        panic!(
            "hole punching between two port-preserving NATs failed: {line}\n{}",
            nodes.dump()
        );
    }
    let (a_pub, b_pub) = (t.a_public.unwrap(), t.b_public.unwrap());
    let b_direct = nodes.wait_for(
        2,
        "a direct connection to A after the hole punch",
        STEP,
        |l| connected_to(&a_id)(l).filter(|a| !is_relayed(a)),
    );
    let a_direct = nodes.wait_for(
        1,
        "a direct connection from B after the hole punch",
        STEP,
        |l| connected_to(&b_id)(l).filter(|a| !is_relayed(a)),
    );
    // The direct connection runs between the routers' public addresses: through both NATs'
    // mappings, which only the hole punch opened.
    assert!(
        b_direct.contains(&format!("/ip4/{a_pub}/")),
        "B's direct connection to A is not to A's router {a_pub}: {b_direct}\n{}",
        nodes.dump()
    );
    assert!(
        a_direct.contains(&format!("/ip4/{b_pub}/")),
        "A's direct connection to B is not from B's router {b_pub}: {a_direct}\n{}",
        nodes.dump()
    );
    eprintln!(
        "nat test: behind NAT, hole punching succeeded ({line}); direct connection: B sees A at \
         {b_direct}, A sees B at {a_direct}"
    );
    drop(nodes);
    drop(t);
}
