//! Real `sietch node run` processes for the multi-process tests (the CLI's `cluster.rs` and
//! `nat.rs`, the whole-system market of [`crate::system`]): each with its own data directory
//! made by `sietch init`, its stdout and stderr collected line by line, stopped (SIGTERM,
//! then SIGKILL) on drop, and dumped whole when a wait fails.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Runs a command; `Err` with its output when it cannot start or fails.
pub fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{program} {}: {e}", args.join(" ")))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            text.trim()
        ))
    }
}

/// The `sietch` binary: `$SIETCH_BIN`, else `sietch` in a directory above the test
/// executable (`target/debug/sietch`: cargo builds it before the `sietch-cli` package's own
/// tests, and `cargo nextest run --workspace` builds it for every test), else built now with
/// `cargo build -p sietch-cli --bin sietch` into the test executable's target directory and
/// profile.
pub fn sietch() -> PathBuf {
    static FOUND: OnceLock<PathBuf> = OnceLock::new();
    FOUND.get_or_init(find_or_build).clone()
}

fn find_or_build() -> PathBuf {
    if let Some(p) = std::env::var_os("SIETCH_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    let found = exe
        .ancestors()
        .skip(1)
        .map(|d| d.join("sietch"))
        .find(|p| p.is_file());
    if let Some(p) = found {
        return p;
    }
    // `target/<profile dir>/deps/<test>`: build into that target directory and profile.
    let profile_dir = exe.parent().and_then(Path::parent).unwrap_or_else(|| {
        panic!(
            "no sietch binary above {} and no target directory to build it in: set SIETCH_BIN",
            exe.display()
        )
    });
    let target_dir = profile_dir.parent().unwrap();
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev",
        Some(other) => other,
    };
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!(
        "no sietch binary above {}: building it (profile {profile})",
        exe.display()
    );
    let status = Command::new(&cargo)
        .args(["build", "--quiet", "-p", "sietch-cli", "--bin", "sietch"])
        .args(["--profile", profile, "--manifest-path"])
        .arg(&workspace)
        .arg("--target-dir")
        .arg(target_dir)
        .stdin(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("cannot run {cargo:?} to build sietch: {e}"));
    let built = profile_dir.join("sietch");
    assert!(
        status.success() && built.is_file(),
        "building sietch into {} failed ({status}): build it with `cargo build -p sietch-cli` \
         or set SIETCH_BIN",
        profile_dir.display()
    );
    built
}

/// Lines a node printed, shared with the threads that read its pipes.
type Lines = Arc<Mutex<Vec<String>>>;

fn read_lines(pipe: impl Read + Send + 'static, into: Lines) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            into.lock().unwrap().push(line);
        }
    });
}

/// How to start one node.
#[derive(Debug, Clone, Default)]
pub struct Spec {
    /// Name in messages.
    pub name: String,
    /// Network namespace to run in (`ip netns exec`), if any.
    pub ns: Option<String>,
    /// Arguments after `sietch node run --data-dir DIR`.
    pub args: Vec<String>,
    /// `RUST_LOG` of the node.
    pub rust_log: String,
}

/// A `sietch node run` process; stopped on drop.
pub struct Node {
    /// How it was started.
    pub spec: Spec,
    /// Signalled, killed or stopped on purpose: its exit is not a failure.
    stopped: bool,
    child: Child,
    out: Lines,
    err: Lines,
    dir: tempfile::TempDir,
}

impl Node {
    /// `sietch init`, then `sietch node run`.
    pub fn start(spec: Spec) -> Self {
        let (dir, _) = init(&spec.name);
        Self::start_in(dir, spec)
    }

    /// `sietch node run` on a data directory made by [`init`].
    pub fn start_in(dir: tempfile::TempDir, spec: Spec) -> Self {
        let (child, out, err) = spawn(&spec, dir.path());
        Self {
            spec,
            stopped: false,
            child,
            out,
            err,
            dir,
        }
    }

    /// The node's data directory.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the node and starts it again on the same data directory (same peer id).
    pub fn restart(&mut self) {
        self.stop();
        let (child, out, err) = spawn(&self.spec, self.dir.path());
        self.child = child;
        self.out = out;
        self.err = err;
        self.stopped = false;
    }

    /// Sends a signal (`INT`, `TERM`, `KILL`, ...) to the node.
    pub fn signal(&mut self, sig: &str) {
        self.stopped = true;
        let _ = run("kill", &[&format!("-{sig}"), &self.child.id().to_string()]);
    }

    /// The exit status, if the node has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits up to `timeout` for the node to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(s) = self.exited() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// SIGTERM for a clean stop, then SIGKILL for a node that does not stop.
    pub fn stop(&mut self) {
        self.stopped = true;
        if self.exited().is_some() {
            return;
        }
        self.signal("TERM");
        if self.wait_exit(Duration::from_secs(5)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill(&mut self) {
        self.stopped = true;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Every stdout line so far.
    pub fn stdout(&self) -> Vec<String> {
        self.out.lock().unwrap().clone()
    }

    /// Every stderr line so far (the node's logs).
    pub fn stderr(&self) -> Vec<String> {
        self.err.lock().unwrap().clone()
    }

    /// The first stdout line for which `f` gives `Some`.
    pub fn find<T>(&self, f: impl Fn(&str) -> Option<T>) -> Option<T> {
        self.out.lock().unwrap().iter().find_map(|l| f(l))
    }

    /// Everything the node printed, for failure messages.
    pub fn dump(&mut self) -> String {
        let status = match self.child.try_wait() {
            Ok(Some(s)) => format!("exited: {s}"),
            Ok(None) => "running".into(),
            Err(e) => format!("status unknown: {e}"),
        };
        let tail = |lines: &Lines| {
            let lines = lines.lock().unwrap();
            let skip = lines.len().saturating_sub(150);
            let mut s = String::new();
            if skip > 0 {
                s.push_str(&format!("    ... {skip} earlier lines\n"));
            }
            for l in lines.iter().skip(skip) {
                s.push_str("    ");
                s.push_str(l);
                s.push('\n');
            }
            s
        };
        format!(
            "--- node {}{} ({status})\n  stdout:\n{}  stderr:\n{}",
            self.spec.name,
            self.spec
                .ns
                .as_deref()
                .map(|n| format!(" in {n}"))
                .unwrap_or_default(),
            tail(&self.out),
            tail(&self.err)
        )
    }
}

/// `sietch init` in a new temporary directory; its output. Development set-up: the EVM key
/// is kept unencrypted in the store (`--dev-plaintext-key`), so no node asks for a password
/// nor spends a scrypt at each start.
pub fn init(name: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let args = ["init", "--dev-plaintext-key", "--data-dir", &data];
    match run(sietch().to_str().unwrap(), &args) {
        Ok(out) => (dir, out),
        Err(e) => panic!("`sietch init` for node {name} failed: {e}"),
    }
}

fn spawn(spec: &Spec, data: &Path) -> (Child, Lines, Lines) {
    let mut cmd = match &spec.ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(sietch());
            c
        }
        None => Command::new(sietch()),
    };
    cmd.args(["node", "run", "--data-dir"])
        .arg(data)
        .args(&spec.args)
        .env("RUST_LOG", &spec.rust_log)
        // The layered configuration would pick these up from the test's environment.
        .env_remove("SIETCH_DATA_DIR")
        .env_remove("SIETCH_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    eprintln!("starting node {}: {cmd:?}", spec.name);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start node {}: {e}", spec.name));
    let out = Lines::default();
    let err = Lines::default();
    read_lines(child.stdout.take().unwrap(), out.clone());
    read_lines(child.stderr.take().unwrap(), err.clone());
    (child, out, err)
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The nodes of one run; drops (stops) them in order.
pub struct Nodes(pub Vec<Node>);

impl Nodes {
    /// Everything every node printed.
    pub fn dump(&mut self) -> String {
        self.0.iter_mut().map(Node::dump).collect()
    }

    /// Waits until `f` finds something in the stdout of node `i`, or fails with every
    /// node's output.
    pub fn wait_for<T>(
        &mut self,
        i: usize,
        what: &str,
        timeout: Duration,
        f: impl Fn(&str) -> Option<T>,
    ) -> T {
        self.wait_any(&[i], what, timeout, f).1
    }

    /// Waits until `f` finds something in the stdout of one of the nodes `which`; returns
    /// that node's index and what was found, or fails with every node's output. A node
    /// that exits while waited for fails the wait at once.
    pub fn wait_any<T>(
        &mut self,
        which: &[usize],
        what: &str,
        timeout: Duration,
        f: impl Fn(&str) -> Option<T>,
    ) -> (usize, T) {
        let deadline = Instant::now() + timeout;
        let names: Vec<_> = which.iter().map(|&i| self.0[i].spec.name.clone()).collect();
        loop {
            for &i in which {
                if let Some(t) = self.0[i].find(&f) {
                    return (i, t);
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for node {}: {what}\n{}",
                    names.join(" or "),
                    self.dump()
                );
            }
            self.fail_if_exited(what);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Fails, with every node's output, if a node exited that was not stopped on purpose.
    pub fn fail_if_exited(&mut self, what: &str) {
        let exited = self
            .0
            .iter_mut()
            .filter(|n| !n.stopped)
            .find_map(|n| n.exited().map(|s| (n.spec.name.clone(), s)));
        if let Some((name, status)) = exited {
            panic!(
                "node {name} exited ({status}) while waiting for: {what}\n{}",
                self.dump()
            );
        }
    }
}

/// Word `n` of a line.
pub fn word(line: &str, n: usize) -> Option<&str> {
    line.split_whitespace().nth(n)
}

/// `peer <ID>`.
pub fn peer_line(line: &str) -> Option<String> {
    (word(line, 0)? == "peer").then(|| word(line, 1).map(str::to_owned))?
}

/// `api http://<addr>`: the address.
pub fn api_line(line: &str) -> Option<String> {
    line.strip_prefix("api http://").map(str::to_owned)
}

/// `connected <peer> <addr>` for `peer`: the address.
pub fn connected_to(peer: &str) -> impl Fn(&str) -> Option<String> + '_ {
    move |line| {
        (word(line, 0)? == "connected" && word(line, 1)? == peer)
            .then(|| word(line, 2).map(str::to_owned))?
    }
}
