//! Test-only misbehaviours, all in one place, driven by the `test_*` settings of
//! [`NodeConfig`] (all off by default): a provider that cheats (in stdout, with a poisoned
//! training update, or with a generation's completions altered: `test_cheat_outputs`),
//! withholds its result, overbills GPU time, or names an output file against the rule. The tests of disputes, hostile
//! providers and training turn them on; nothing else should.

use sietch_market::B256;
use sietch_sandbox::JobReport;

use crate::config::NodeConfig;

/// `test_cheat_ppm`: whether this job gets a wrong answer (a fixed draw per job id, so a
/// re-run of the same job cheats alike).
pub(super) fn cheats_on(config: &NodeConfig, job: &B256) -> bool {
    let ppm = config.test_cheat_ppm;
    if ppm == 0 {
        return false;
    }
    let h = blake3::hash(job.as_slice());
    let mut x = [0u8; 4];
    x.copy_from_slice(&h.as_bytes()[..4]);
    u32::from_le_bytes(x) % 1_000_000 < ppm
}

/// What a cheat does to the `/output` files (`test_cheat_outputs`): to those in the `SWT1`
/// weights format (a training update: `SWT1`, u32 layers, u32 widths, f32 parameters), each
/// parameter `x` becoming another number; or to a generation's `completions.jsonl`, a word
/// of its text replaced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Poison {
    /// `zeros`: 0 (a lazy provider that trained nothing).
    Zeros,
    /// `negate`: −x (the update reversed: gradient ascent).
    Negate,
    /// `scale=F`: x · F.
    Scale(f32),
    /// `noise=A`: uniform in [−A, A], drawn from the job id (the same on every run of it).
    Noise(f32),
    /// `completions`: in the inference guest's `/output/completions.jsonl`, the first word
    /// (a run of ASCII letters) of the first completion's text that has one becomes another
    /// ("Berlin", or "Madrid" in place of "Berlin"); the lines stay valid JSONL, their
    /// tokens and counts unchanged. A rescoring verdict fails on it (the line is not the one
    /// its tokens give), as an exact comparison does.
    Completions,
}

impl Poison {
    /// The setting's value: `None` for the empty one (the cheat lies in stdout only);
    /// `Err` says what it takes.
    pub(crate) fn parse(setting: &str) -> Result<Option<Self>, String> {
        let number = |v: &str| -> Result<f32, String> {
            v.parse::<f32>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| format!("{v:?} is not a finite number"))
        };
        match setting.split_once('=') {
            _ if setting.is_empty() => Ok(None),
            None if setting == "zeros" => Ok(Some(Self::Zeros)),
            None if setting == "negate" => Ok(Some(Self::Negate)),
            None if setting == "completions" => Ok(Some(Self::Completions)),
            Some(("scale", f)) => Ok(Some(Self::Scale(number(f)?))),
            Some(("noise", a)) => Ok(Some(Self::Noise(number(a)?.abs()))),
            _ => Err(format!(
                "{setting:?}: want zeros, negate, scale=F, noise=A or completions (empty: stdout \
                 only)"
            )),
        }
    }

    /// Poisons the output `name`, `file`, in place if it is one this poison alters (a
    /// well-formed `SWT1` file; for [`Poison::Completions`], `completions.jsonl` with a word
    /// to replace); whether it was.
    fn apply(self, job: &B256, name: &str, file: &mut Vec<u8>) -> bool {
        if self == Self::Completions {
            return name == sietch_verifier::rescore::COMPLETIONS && replace_a_word(file);
        }
        let Some(start) = swt_params_start(file) else {
            return false;
        };
        let mut noise = blake3::Hasher::new_derive_key("sietch test cheat noise")
            .update(job.as_slice())
            .finalize_xof();
        for word in file
            .get_mut(start..)
            .unwrap_or_default()
            .chunks_exact_mut(4)
        {
            let mut b = [0u8; 4];
            b.copy_from_slice(word);
            let x = f32::from_le_bytes(b);
            let y = match self {
                Self::Zeros => 0.0,
                Self::Negate => -x,
                Self::Scale(f) => x * f,
                Self::Noise(a) => {
                    noise.fill(&mut b);
                    // 24 random bits to a uniform u in [0, 1), then to [−A, A).
                    let u = (u32::from_le_bytes(b) >> 8) as f32 / (1u32 << 24) as f32;
                    (2.0 * u - 1.0) * a
                }
                Self::Completions => x,
            };
            word.copy_from_slice(&y.to_le_bytes());
        }
        true
    }
}

/// In JSONL completions (`{"index":N,"text":"...",...}` a line), replaces the first word (a
/// run of ASCII letters, outside escapes) of the first `text` that has one by another word;
/// whether one was replaced. The rest of the bytes are kept as they are.
fn replace_a_word(file: &mut Vec<u8>) -> bool {
    const KEY: &[u8] = b"\"text\":\"";
    let mut line_start = 0;
    while line_start < file.len() {
        let line_end = file
            .get(line_start..)
            .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
            .map_or(file.len(), |at| line_start + at);
        let line = file.get(line_start..line_end).unwrap_or_default();
        let text = line
            .windows(KEY.len())
            .position(|w| w == KEY)
            .map(|at| at + KEY.len());
        if let Some(text) = text
            && let Some((from, to)) = first_word(line.get(text..).unwrap_or_default())
        {
            let (from, to) = (line_start + text + from, line_start + text + to);
            let other: &[u8] = if file.get(from..to) == Some(&b"Berlin"[..]) {
                b"Madrid"
            } else {
                b"Berlin"
            };
            drop(file.splice(from..to, other.iter().copied()));
            return true;
        }
        line_start = line_end + 1;
    }
    false
}

/// The first word (a run of ASCII letters) of the JSON string whose text (after its
/// opening quote) `s` starts with, as a range of `s`; escapes are skipped, the closing quote
/// ends the search.
fn first_word(s: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        match b {
            b'"' => return None,
            // `\uXXXX`: six bytes; any other escape: two.
            b'\\' => i += if s.get(i + 1) == Some(&b'u') { 6 } else { 2 },
            b if b.is_ascii_alphabetic() => {
                let len = s
                    .get(i..)
                    .unwrap_or_default()
                    .iter()
                    .take_while(|c| c.is_ascii_alphabetic())
                    .count();
                return Some((i, i + len));
            }
            _ => i += 1,
        }
    }
    None
}

/// Where the parameters of an `SWT1` file start, if `file` is one (the magic, 1..16
/// layers, and exactly 4 bytes a parameter after the widths).
fn swt_params_start(file: &[u8]) -> Option<usize> {
    let u32_at = |at: usize| -> Option<u64> {
        let mut b = [0u8; 4];
        b.copy_from_slice(file.get(at..at + 4)?);
        Some(u64::from(u32::from_le_bytes(b)))
    };
    if file.get(..4)? != b"SWT1" {
        return None;
    }
    let layers = u32_at(4)?;
    if !(1..=16).contains(&layers) {
        return None;
    }
    let mut params = 0u64;
    let mut below = u32_at(8)?;
    for i in 1..=layers {
        let width = u32_at(8 + 4 * i as usize)?;
        params = params.checked_add(below.checked_mul(width)?.checked_add(width)?)?;
        below = width;
    }
    let start = 8 + 4 * (layers as usize + 1);
    (file.len() as u64 == start as u64 + 4 * params).then_some(start)
}

/// Alters a run's report as the settings ask, its output hash recomputed so that the
/// provider commits to the altered result as if it were true: a wrong answer that still
/// looks like one (`test_cheat_ppm`: the outputs poisoned as `test_cheat_outputs` says, or,
/// when it alters none or that setting is empty, " (cheat)" after stdout), an
/// output name of the provider's choosing (`test_output_name`).
pub(super) fn tamper(config: &NodeConfig, job: &B256, report: &mut JobReport) {
    if cheats_on(config, job) {
        let poison = Poison::parse(&config.test_cheat_outputs).ok().flatten();
        let mut poisoned = false;
        if let Some(p) = poison {
            for (name, file) in report.outputs.iter_mut() {
                poisoned |= p.apply(job, name, file);
            }
        }
        if !poisoned {
            report.stdout.extend_from_slice(b" (cheat)");
        }
        rehash(report);
    }
    if !config.test_output_name.is_empty() {
        let data = report
            .outputs
            .pop_first()
            .map(|(_, d)| d)
            .unwrap_or_default();
        report.outputs.insert(config.test_output_name.clone(), data);
        rehash(report);
    }
}

fn rehash(report: &mut JobReport) {
    report.output_hash =
        sietch_sandbox::output_hash(report.outcome, &report.stdout, &report.outputs);
}

/// The GPU time billed for a run that used `gpu_time_ns`: what it used, plus
/// `test_overbill_gpu_millis` it did not.
pub(super) fn billed_gpu_millis(config: &NodeConfig, gpu_time_ns: u64) -> u64 {
    (gpu_time_ns / 1_000_000).saturating_add(config.test_overbill_gpu_millis)
}

/// `test_undeliver` 1 or 2: results are kept, and claimed for, but never sent to the buyer.
pub(super) fn keeps_results(config: &NodeConfig) -> bool {
    config.test_undeliver > 0
}

/// `test_undeliver` 2: not even to the verifiers of a dispute.
pub(super) fn keeps_results_from_verifiers(config: &NodeConfig) -> bool {
    config.test_undeliver == 2
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use sietch_sandbox::Outcome;

    use super::*;

    fn report() -> JobReport {
        let outputs = BTreeMap::from([("out.txt".to_owned(), b"42".to_vec())]);
        let outcome = Outcome::Exited { code: 0 };
        JobReport {
            outcome,
            fuel_used: 10,
            output_hash: sietch_sandbox::output_hash(outcome, b"hello", &outputs),
            stdout: b"hello".to_vec(),
            stderr: Vec::new(),
            outputs,
            gpu_time_ns: 2_500_000,
            wall_time: Duration::ZERO,
        }
    }

    #[test]
    fn an_honest_configuration_changes_nothing() {
        let config = NodeConfig::default();
        let mut r = report();
        tamper(&config, &B256::repeat_byte(1), &mut r);
        assert_eq!(r, report());
        assert_eq!(billed_gpu_millis(&config, r.gpu_time_ns), 2);
        assert!(!keeps_results(&config));
        assert!(!keeps_results_from_verifiers(&config));
    }

    #[test]
    fn a_cheat_commits_to_a_wrong_answer_that_looks_right() {
        let config = NodeConfig {
            test_cheat_ppm: 1_000_000,
            ..NodeConfig::default()
        };
        let mut r = report();
        tamper(&config, &B256::repeat_byte(1), &mut r);
        assert_eq!(r.stdout, b"hello (cheat)");
        assert_ne!(r.output_hash, report().output_hash);
        assert_eq!(
            r.output_hash,
            sietch_sandbox::output_hash(r.outcome, &r.stdout, &r.outputs)
        );
        let none = NodeConfig::default();
        assert!(!cheats_on(&none, &B256::repeat_byte(1)));
    }

    /// An `SWT1` file of a 2-3-1 network (13 parameters), each `0.5 · (i + 1)`.
    fn update() -> Vec<u8> {
        let mut f = b"SWT1".to_vec();
        for n in [2u32, 2, 3, 1] {
            f.extend_from_slice(&n.to_le_bytes());
        }
        for i in 0..13u8 {
            f.extend_from_slice(&(0.5 * f32::from(i + 1)).to_le_bytes());
        }
        f
    }

    fn params(f: &[u8]) -> Vec<f32> {
        f[20..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    #[test]
    fn a_poisoning_cheat_signs_a_wrong_update_and_leaves_stdout_alone() {
        let honest: Vec<f32> = (0..13u8).map(|i| 0.5 * f32::from(i + 1)).collect();
        let job = B256::repeat_byte(1);
        let outputs = BTreeMap::from([
            ("update.swt".to_owned(), update()),
            ("stats.json".to_owned(), b"{}".to_vec()),
        ]);
        let outcome = Outcome::Exited { code: 0 };
        let base = JobReport {
            output_hash: sietch_sandbox::output_hash(outcome, b"", &outputs),
            stdout: Vec::new(),
            outputs,
            ..report()
        };
        // Each setting, and what every poisoned parameter must satisfy.
        type Holds = fn(f32) -> bool;
        let cases: [(&str, Holds); 4] = [
            ("zeros", |y| y == 0.0),
            ("negate", |y| y < 0.0),
            ("scale=-10", |y| y <= -5.0),
            ("noise=0.25", |y| y.abs() <= 0.25),
        ];
        for (setting, holds) in cases {
            let config = NodeConfig {
                test_cheat_ppm: 1_000_000,
                test_cheat_outputs: setting.into(),
                ..NodeConfig::default()
            };
            let mut r = base.clone();
            tamper(&config, &job, &mut r);
            let got = params(&r.outputs["update.swt"]);
            assert_eq!(got.len(), 13);
            assert!(got.iter().all(|y| holds(*y)), "{setting}: {got:?}");
            assert_ne!(got, honest, "{setting}");
            assert_eq!(
                r.outputs["update.swt"][..20],
                update()[..20],
                "the header kept"
            );
            assert_eq!(r.outputs["stats.json"], b"{}", "{setting}");
            assert!(
                r.stdout.is_empty(),
                "{setting}: the lie is in the update only"
            );
            assert_eq!(
                r.output_hash,
                sietch_sandbox::output_hash(r.outcome, &r.stdout, &r.outputs),
                "{setting}: committed to what it returns"
            );
            // The same job cheats alike (a spot check's re-run by the cheat agrees with it).
            let mut again = base.clone();
            tamper(&config, &job, &mut again);
            assert_eq!(again, r, "{setting}");
        }
        // No `SWT1` output (or a malformed one): the lie goes to stdout instead.
        let config = NodeConfig {
            test_cheat_ppm: 1_000_000,
            test_cheat_outputs: "negate".into(),
            ..NodeConfig::default()
        };
        let mut r = report();
        tamper(&config, &job, &mut r);
        assert_eq!(r.stdout, b"hello (cheat)");
        let mut short = update();
        short.pop();
        assert!(swt_params_start(&short).is_none());
        assert_eq!(swt_params_start(&update()), Some(20));
    }

    /// Completions as the inference guest writes them: an empty text, then one with escapes
    /// before its first word.
    const COMPLETIONS: &str = concat!(
        r#"{"index":0,"text":"","prompt_tokens":3,"completion_tokens":1,"finish":"stop","tokens":[2]}"#,
        "\n",
        r#"{"index":1,"text":"\n\u00e9 The capital is Paris.","prompt_tokens":37,"completion_tokens":8,"finish":"stop","tokens":[504,3575,282,4649,314,7042,30,2]}"#,
        "\n",
    );

    fn jsonl(file: &[u8]) -> Vec<serde_json::Value> {
        std::str::from_utf8(file)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn a_completions_cheat_replaces_a_word_of_the_text_and_leaves_stdout_alone() {
        let job = B256::repeat_byte(1);
        let config = NodeConfig {
            test_cheat_ppm: 1_000_000,
            test_cheat_outputs: "completions".into(),
            ..NodeConfig::default()
        };
        let generation = |completions: &str| {
            let outputs = BTreeMap::from([
                (
                    "completions.jsonl".to_owned(),
                    completions.as_bytes().to_vec(),
                ),
                ("update.swt".to_owned(), update()),
            ]);
            let outcome = Outcome::Exited { code: 0 };
            JobReport {
                output_hash: sietch_sandbox::output_hash(outcome, b"", &outputs),
                stdout: Vec::new(),
                outputs,
                ..report()
            }
        };
        let base = generation(COMPLETIONS);
        let mut r = base.clone();
        tamper(&config, &job, &mut r);
        let (honest, cheated) = (
            jsonl(COMPLETIONS.as_bytes()),
            jsonl(&r.outputs["completions.jsonl"]),
        );
        assert_eq!(cheated.len(), 2, "still one valid JSON line a completion");
        assert_eq!(cheated[0], honest[0], "a text without a word is kept");
        assert_eq!(cheated[1]["text"], "\n\u{e9} Berlin capital is Paris.");
        let mut rest = cheated[1].clone();
        rest["text"] = honest[1]["text"].clone();
        assert_eq!(rest, honest[1], "only the text changed");
        assert_eq!(r.outputs["update.swt"], update(), "no other output altered");
        assert!(r.stdout.is_empty(), "the lie is in the completions only");
        assert_ne!(r.output_hash, base.output_hash);
        assert_eq!(
            r.output_hash,
            sietch_sandbox::output_hash(r.outcome, &r.stdout, &r.outputs),
            "committed to what it returns"
        );
        let mut again = base.clone();
        tamper(&config, &job, &mut again);
        assert_eq!(again, r, "the same job cheats alike");
        // A word that is already the replacement becomes another.
        let mut berlin = generation(&COMPLETIONS.replace("The", "Berlin"));
        tamper(&config, &job, &mut berlin);
        assert_eq!(
            jsonl(&berlin.outputs["completions.jsonl"])[1]["text"],
            "\n\u{e9} Madrid capital is Paris."
        );
        // No word to replace (or no completions): the lie goes to stdout instead.
        let mut wordless = generation(&COMPLETIONS.replace("The capital is Paris.", "42 !"));
        tamper(&config, &job, &mut wordless);
        assert_eq!(wordless.stdout, b" (cheat)");
        assert_eq!(
            wordless.outputs["completions.jsonl"],
            COMPLETIONS
                .replace("The capital is Paris.", "42 !")
                .as_bytes()
        );
        let mut other = report();
        tamper(&config, &job, &mut other);
        assert_eq!(other.stdout, b"hello (cheat)");
        assert_eq!(other.outputs, report().outputs);
        // The training poisons leave completions alone.
        let negate = NodeConfig {
            test_cheat_outputs: "negate".into(),
            ..config
        };
        let mut r = base.clone();
        tamper(&negate, &job, &mut r);
        assert_eq!(r.outputs["completions.jsonl"], COMPLETIONS.as_bytes());
    }

    #[test]
    fn the_poison_setting_is_parsed_or_refused() {
        assert_eq!(Poison::parse(""), Ok(None));
        assert_eq!(Poison::parse("zeros"), Ok(Some(Poison::Zeros)));
        assert_eq!(Poison::parse("negate"), Ok(Some(Poison::Negate)));
        assert_eq!(Poison::parse("scale=-10"), Ok(Some(Poison::Scale(-10.0))));
        assert_eq!(Poison::parse("noise=1"), Ok(Some(Poison::Noise(1.0))));
        assert_eq!(Poison::parse("completions"), Ok(Some(Poison::Completions)));
        for bad in [
            "zero",
            "scale",
            "scale=x",
            "noise=inf",
            "negate=1",
            "=1",
            "completions=1",
        ] {
            assert!(Poison::parse(bad).is_err(), "{bad}");
        }
        let config = NodeConfig {
            test_cheat_outputs: "scale=x".into(),
            ..NodeConfig::default()
        };
        assert!(config.check().is_err());
        let completions = NodeConfig {
            test_cheat_outputs: "completions".into(),
            ..NodeConfig::default()
        };
        assert!(completions.check().is_ok());
    }

    #[test]
    fn the_other_misbehaviours_do_what_their_settings_say() {
        let config = NodeConfig {
            test_output_name: "../evil".into(),
            test_overbill_gpu_millis: 1_000,
            test_undeliver: 2,
            ..NodeConfig::default()
        };
        let mut r = report();
        tamper(&config, &B256::repeat_byte(1), &mut r);
        assert_eq!(r.outputs.keys().collect::<Vec<_>>(), ["../evil"]);
        assert_eq!(r.outputs["../evil"], b"42");
        assert_eq!(
            r.output_hash,
            sietch_sandbox::output_hash(r.outcome, &r.stdout, &r.outputs)
        );
        assert_eq!(billed_gpu_millis(&config, 2_500_000), 1_002);
        assert!(keeps_results(&config));
        assert!(keeps_results_from_verifiers(&config));
        let to_verifiers = NodeConfig {
            test_undeliver: 1,
            ..NodeConfig::default()
        };
        assert!(keeps_results(&to_verifiers));
        assert!(!keeps_results_from_verifiers(&to_verifiers));
    }
}
