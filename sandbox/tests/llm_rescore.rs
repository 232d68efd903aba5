//! The inference guest's rescoring mode (`mode=rescore`, guests/llm/rescore.c, docs/ai.md
//! "Re-scoring a generation") on the real model: a generation's own completions pass, in the
//! sandbox and natively with the same verdict bytes; a claimed token replaced by an unlikely
//! one, a completion cut short, one that runs past its stop, a line whose text is not its
//! tokens' and a missing or extra completion fail, naming the completion (and the token); an
//! unseeded sampled completion is replayed from the job id; a batch cut short passes only as
//! partial.
//!
//! Without the model in the cache (scripts/model.sh) every test prints SKIPPED and passes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

#[path = "common/llm.rs"]
mod llm_support;

use std::path::PathBuf;
use std::process::Command;

use llm_support::{Builds, MODEL_NAME, builds, completions, sandbox, spec};
use sietch_sandbox::{JobModule, Outcome, Sandbox};

const FUEL: u64 = 2_000_000_000_000;
const MARGIN: &str = "0.1";

/// Greedy (with an end token, a stop string, max_tokens), seeded sampling with top-p and
/// without, and an error line.
const PROMPTS: &str = concat!(
    "{\"prompt\":\"What is the capital of France?\",\"max_tokens\":16}\n",
    "{\"prompt\":\"1, 2, 3, 4,\",\"raw\":true,\"max_tokens\":8,\"stop\":[\" 7\"]}\n",
    "{\"prompt\":\"Write a haiku about the sea.\",\"max_tokens\":12,\"temperature\":0.8,\"top_p\":0.9,\"seed\":7}\n",
    "\n",
    "{\"prompt\":\"Count to five.\",\"max_tokens\":10,\"temperature\":1.0,\"seed\":3}\n",
    "not json\n",
);

/// The model's path, or None (and SKIPPED printed) when it is not cached.
fn model() -> Option<PathBuf> {
    let dir = std::env::var_os("SIETCH_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/sietch/models")
        });
    let path = dir.join(MODEL_NAME);
    if path.is_file() {
        Some(path)
    } else {
        println!(
            "SKIPPED: the model {} is not cached (scripts/model.sh)",
            path.display()
        );
        None
    }
}

struct Guest {
    sb: Sandbox,
    module: JobModule,
    model: Vec<u8>,
    path: PathBuf,
    builds: Builds,
}

impl Guest {
    fn new(path: PathBuf) -> Self {
        let b = builds();
        let sb = sandbox();
        let module = sb.load(&b.host_kernels_wasm()).unwrap();
        Self {
            sb,
            module,
            model: std::fs::read(&path).unwrap(),
            path,
            builds: b,
        }
    }

    /// A generation job's completions.
    fn generate(&self, prompts: &str, job_id: u8) -> String {
        let mut s = spec(&self.model, prompts, FUEL);
        s.job_id = [job_id; 32];
        let r = self.sb.run(&self.module, &s).unwrap();
        assert_eq!(
            r.outcome,
            Outcome::Exited { code: 0 },
            "{}",
            String::from_utf8_lossy(&r.stderr)
        );
        completions(&r)
    }

    /// The rescoring job's verdict on `claimed` (job id `job_id`, `extra` args).
    fn rescore(&self, prompts: &str, claimed: &str, job_id: u8, extra: &[&str]) -> String {
        let mut s = spec(&self.model, prompts, FUEL);
        s.job_id = [job_id; 32];
        s.args = ["mode=rescore", &format!("margin={MARGIN}")]
            .iter()
            .chain(extra)
            .map(|a| (*a).to_owned())
            .collect();
        s.inputs
            .insert("claimed.jsonl".into(), claimed.as_bytes().to_vec());
        let r = self.sb.run(&self.module, &s).unwrap();
        assert_eq!(
            r.outcome,
            Outcome::Exited { code: 0 },
            "{}",
            String::from_utf8_lossy(&r.stderr)
        );
        assert_eq!(r.outputs.len(), 1, "the verdict only");
        String::from_utf8(r.outputs["verdict.json"].clone()).unwrap()
    }

    /// The native build's verdict on the same files.
    fn rescore_native(&self, prompts: &str, claimed: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let (p, c, o) = (
            dir.path().join("p"),
            dir.path().join("c"),
            dir.path().join("v"),
        );
        std::fs::write(&p, prompts).unwrap();
        std::fs::write(&c, claimed).unwrap();
        let out = Command::new(self.builds.native())
            .args(["--rescore", MARGIN])
            .args([&self.path, &p, &c, &o])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read_to_string(&o).unwrap()
    }
}

/// The "tokens" of a completion line.
fn tokens(line: &str) -> Vec<u32> {
    let at = line.find("\"tokens\":[").unwrap() + 10;
    let end = at + line[at..].find(']').unwrap();
    line[at..end]
        .split(',')
        .filter(|t| !t.is_empty())
        .map(|t| t.parse().unwrap())
        .collect()
}

/// `line` with its tokens replaced by `ids`.
fn with_tokens(line: &str, ids: &[u32]) -> String {
    let at = line.find("\"tokens\":[").unwrap() + 10;
    let end = at + line[at..].find(']').unwrap();
    let list: Vec<String> = ids.iter().map(u32::to_string).collect();
    format!("{}{}{}", &line[..at], list.join(","), &line[end..])
}

/// `claimed` with line `i` replaced.
fn replace_line(claimed: &str, i: usize, line: &str) -> String {
    claimed
        .lines()
        .enumerate()
        .map(|(k, l)| format!("{}\n", if k == i { line } else { l }))
        .collect()
}

/// The number after `"key":` in a verdict.
fn number(verdict: &str, key: &str) -> f64 {
    let k = format!("\"{key}\":");
    let at = verdict.find(&k).unwrap() + k.len();
    let end = at + verdict[at..].find([',', '}']).unwrap();
    verdict[at..end].parse().unwrap()
}

/// A claimed completion's verdict must fail at `failure` (`{"index":..,"token":..`).
fn assert_fails(verdict: &str, failure: &str, why: &str) {
    assert!(verdict.starts_with("{\"pass\":false,"), "{verdict}");
    assert!(
        verdict.contains(&format!("\"failure\":{failure},\"reason\":")),
        "{verdict}"
    );
    assert!(verdict.contains(why), "{verdict}");
}

#[test]
fn honest_completions_pass_and_each_kind_of_wrong_claim_fails() {
    let Some(path) = model() else { return };
    let g = Guest::new(path);
    let claimed = g.generate(PROMPTS, 1);
    println!("{claimed}");
    let lines: Vec<&str> = claimed.lines().collect();
    assert_eq!(lines.len(), 5);
    assert!(
        lines[0].contains("Paris") && lines[0].contains("\"finish\":\"stop\""),
        "{}",
        lines[0]
    );
    assert!(lines[1].contains("\"finish\":\"stop\""), "{}", lines[1]);

    // The generation's own completions: every token is the model's choice (margin 0), in the
    // sandbox and natively, with the same bytes.
    let verdict = g.rescore(PROMPTS, &claimed, 1, &[]);
    println!("{verdict}");
    assert!(
        verdict.starts_with("{\"pass\":true,\"margin\":0.1,\"worst_margin\":0,"),
        "{verdict}"
    );
    assert!(verdict.contains("\"completions\":5,") && verdict.ends_with("\"failure\":null}\n"));
    assert_eq!(
        g.rescore_native(PROMPTS, &claimed),
        verdict,
        "native and wasm verdicts differ"
    );

    let paris = tokens(lines[0]);
    let check = |what: &str, claim: String, failure: &str, why: &str| {
        let v = g.rescore(PROMPTS, &claim, 1, &[]);
        println!("{what}: {v}");
        assert_fails(&v, failure, why);
        assert_eq!(
            g.rescore_native(PROMPTS, &claim),
            v,
            "{what}: native and wasm differ"
        );
        v
    };
    // A token replaced by an unlikely one (id 1000 after "The capital of"), text and all.
    let mut cheat = paris.clone();
    cheat[3] = 1000;
    let v = check(
        "a replaced token",
        replace_line(&claimed, 0, &with_tokens(lines[0], &cheat)),
        "{\"index\":0,\"token\":3",
        "logits below the best",
    );
    assert!(number(&v, "worst_margin") > 5.0, "{v}");
    // Cut short: the last two tokens (the period and the end token) dropped.
    let short = paris[..paris.len() - 2].to_vec();
    check(
        "cut short",
        replace_line(&claimed, 0, &with_tokens(lines[0], &short)),
        &format!("{{\"index\":0,\"token\":{}", short.len()),
        "cut short",
    );
    // Past its end: a token after the end token.
    let mut long = paris.clone();
    long.push(paris[0]);
    check(
        "past the end",
        replace_line(&claimed, 0, &with_tokens(lines[0], &long)),
        &format!("{{\"index\":0,\"token\":{}", paris.len() - 1),
        "runs past its end",
    );
    // The right tokens, another text.
    check(
        "another text",
        replace_line(&claimed, 0, &lines[0].replace("Paris", "Lyon")),
        "{\"index\":0,\"token\":null",
        "not the one its tokens give",
    );
    // A sampled token replaced by an unlikely one.
    let mut sampled = tokens(lines[2]);
    sampled[4] = 1000;
    check(
        "a replaced sampled token",
        replace_line(&claimed, 2, &with_tokens(lines[2], &sampled)),
        "{\"index\":2,\"token\":4",
        "not the seeded draw's",
    );
    // A completion missing, and one too many.
    let missing: String = lines[..4].iter().map(|l| format!("{l}\n")).collect();
    check(
        "missing",
        missing,
        "{\"index\":4,\"token\":null",
        "the output ends",
    );
    check(
        "extra",
        format!("{claimed}{}\n", lines[4]),
        "{\"index\":5,\"token\":null",
        "more completions",
    );
}

/// Unseeded sampling draws its seed from random_get, which the sandbox derives from the job id:
/// the rescoring job, run with the generation's job id (as every re-run is), replays it.
#[test]
fn unseeded_sampling_is_replayed_from_the_job_id() {
    let Some(path) = model() else { return };
    let g = Guest::new(path);
    let prompts = "{\"prompt\":\"Tell me a story.\",\"max_tokens\":12,\"temperature\":1.0}\n";
    let claimed = g.generate(prompts, 9);
    let same = g.rescore(prompts, &claimed, 9, &[]);
    assert!(same.starts_with("{\"pass\":true,"), "{same}");
    let other = g.rescore(prompts, &claimed, 10, &[]);
    println!("{claimed}{same}{other}");
    assert_fails(&other, "{\"index\":0,\"token\":0", "not the seeded draw's");
}

/// A batch that ran out of fuel keeps the completions it finished: `partial=1` checks those and
/// does not hold the rest against it; without it a missing completion fails.
#[test]
fn a_batch_cut_short_passes_only_as_partial() {
    let Some(path) = model() else { return };
    let g = Guest::new(path);
    let prompts = concat!(
        "{\"prompt\":\"What is the capital of France?\",\"max_tokens\":8}\n",
        "{\"prompt\":\"Name a color.\",\"max_tokens\":8}\n",
    );
    let claimed = g.generate(prompts, 1);
    let first = format!("{}\n", claimed.lines().next().unwrap());
    assert_fails(
        &g.rescore(prompts, &first, 1, &[]),
        "{\"index\":1,\"token\":null",
        "the output ends",
    );
    let v = g.rescore(prompts, &first, 1, &["partial=1"]);
    assert!(
        v.starts_with("{\"pass\":true,") && v.contains("\"completions\":1,"),
        "{v}"
    );
    // A bad argument is refused (exit 1) rather than ignored.
    let mut s = spec(&g.model, prompts, FUEL);
    s.args = vec!["mode=rescore".into(), "margin=-1".into()];
    s.inputs.insert("claimed.jsonl".into(), first.into_bytes());
    let r = g.sb.run(&g.module, &s).unwrap();
    assert_eq!(r.outcome, Outcome::Exited { code: 1 });
    assert!(r.outputs.is_empty());
}
