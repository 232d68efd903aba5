//! Text generation in one call: [`Client::generate`] runs a batch of prompts through a
//! language model on the market (the inference guest of `sietch-guests`, docs/ai.md) and
//! returns the completions with what they cost.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Client, Error, Finished, Job, Result};

/// The model a generation runs: a GGUF file's bytes (uploaded to the node once: the SDK asks
/// the node first and sends nothing when it holds them), or the hash of a blob the node holds.
#[derive(Debug, Clone)]
pub enum Model {
    /// The GGUF file's bytes.
    Bytes(Vec<u8>),
    /// `0x` and the blake3 hash of a blob the node holds.
    Blob(String),
}

/// One request of a batch, as the inference guest reads it (a line of `prompts.jsonl`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Prompt {
    /// The user's message (or the whole text, with [`Prompt::raw`]).
    pub prompt: String,
    /// The system message of the chat template (the model's own default when `None`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// The text as it is, without the chat template.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub raw: bool,
    /// Most tokens to generate (the guest's default, 64, when `None`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sampling temperature; 0 or `None` is greedy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Nucleus sampling: the smallest set of tokens whose probability reaches `top_p`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// The sampler's seed (drawn from the job's id when `None`: a re-run draws the same).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Texts that end the completion (not included in it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
}

impl Prompt {
    /// A chat prompt with the guest's defaults (greedy, 64 tokens).
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            prompt: text.into(),
            ..Self::default()
        }
    }

    /// At most `n` tokens.
    #[must_use]
    pub fn max_tokens(mut self, n: u32) -> Self {
        self.max_tokens = Some(n);
        self
    }

    /// Samples at `temperature` within `top_p`, from `seed`.
    #[must_use]
    pub fn sample(mut self, temperature: f32, top_p: f32, seed: Option<u64>) -> Self {
        self.temperature = Some(temperature);
        self.top_p = Some(top_p);
        self.seed = seed;
        self
    }
}

/// One completion, as the guest wrote it (a line of `completions.jsonl`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Completion {
    /// Which request of the batch.
    pub index: usize,
    /// The generated text (empty for an error).
    #[serde(default)]
    pub text: String,
    /// Tokens of the prompt (with its template).
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Tokens generated.
    #[serde(default)]
    pub completion_tokens: u64,
    /// `stop`, `length` or `error`.
    pub finish: String,
    /// What was wrong with the request, for `finish == "error"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A generation job: the model, the prompts, and the job's limits and price.
#[derive(Debug, Clone)]
pub struct Generation {
    model: Model,
    /// The requests, one JSON object per line, as the guest reads them.
    prompts: Vec<u8>,
    fuel: u64,
    memory_bytes: u64,
    wall_time_ms: u64,
    sampling_ppm: u32,
    rescore: Option<f64>,
    price_cap: u128,
}

/// Fuel a generation may burn by default: about 600 tokens of SmolLM2-135M.
pub const DEFAULT_GENERATION_FUEL: u64 = 20_000_000_000;

impl Generation {
    /// `prompts` through `model`, with room for the model's context (256 MiB of memory),
    /// [`DEFAULT_GENERATION_FUEL`], 5 minutes, 10% sampling and a price cap of 1 token.
    pub fn new(model: Model, prompts: Vec<Prompt>) -> Self {
        let mut jsonl = Vec::new();
        for p in &prompts {
            // A struct of strings, numbers and bools always serializes.
            if let Ok(line) = serde_json::to_vec(p) {
                jsonl.extend_from_slice(&line);
                jsonl.push(b'\n');
            }
        }
        Self::from_jsonl(model, jsonl)
    }

    /// Requests already written as the guest reads them, one JSON object per line
    /// (`sandbox/guests/llm/README.md`); the guest answers a bad line with an error line.
    pub fn from_jsonl(model: Model, jsonl: Vec<u8>) -> Self {
        Self {
            model,
            prompts: jsonl,
            fuel: DEFAULT_GENERATION_FUEL,
            memory_bytes: 256 << 20,
            wall_time_ms: 300_000,
            sampling_ppm: 100_000,
            rescore: None,
            price_cap: 1_000_000_000_000_000_000,
        }
    }

    /// The fuel limit.
    #[must_use]
    pub fn fuel(mut self, fuel: u64) -> Self {
        self.fuel = fuel;
        self
    }

    /// The memory limit, in bytes.
    #[must_use]
    pub fn memory_bytes(mut self, b: u64) -> Self {
        self.memory_bytes = b;
        self
    }

    /// The wall-clock limit.
    #[must_use]
    pub fn wall_time_ms(mut self, ms: u64) -> Self {
        self.wall_time_ms = ms;
        self
    }

    /// Share of such jobs spot-checked, in parts per million.
    #[must_use]
    pub fn sampling_ppm(mut self, ppm: u32) -> Self {
        self.sampling_ppm = ppm;
        self
    }

    /// Spot-check by re-scoring the claimed completions within `margin` logits ([`Job::rescore`],
    /// docs/ai.md "Re-scoring a generation") instead of generating again and comparing bytes.
    #[must_use]
    pub fn rescore(mut self, margin: f64) -> Self {
        self.rescore = Some(margin);
        self
    }

    /// The most the job may cost, in token base units.
    #[must_use]
    pub fn price_cap(mut self, cap: u128) -> Self {
        self.price_cap = cap;
        self
    }

    /// The prompts as the guest reads them: one JSON object per line.
    pub fn prompts_jsonl(&self) -> Vec<u8> {
        self.prompts.clone()
    }
}

/// What a generation gave and cost.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The completions, one per prompt that finished (a job that ran out of fuel keeps the
    /// ones finished before).
    pub completions: Vec<Completion>,
    /// Tokens of all prompts.
    pub prompt_tokens: u64,
    /// Tokens generated.
    pub completion_tokens: u64,
    /// The job as it finished: provider, paid, check, milliseconds, outputs and fuel.
    pub job: Finished,
}

impl Generated {
    /// Tokens generated per second, from submission to the verified result.
    pub fn tokens_per_second(&self) -> f64 {
        self.completion_tokens as f64 / (self.job.millis.max(1) as f64 / 1000.0)
    }

    /// What 1,000 tokens (prompt and completion) cost, in token base units.
    pub fn cost_per_1k_tokens(&self) -> u128 {
        let paid: u128 = self.job.paid.parse().unwrap_or(0);
        let tokens = u128::from((self.prompt_tokens + self.completion_tokens).max(1));
        paid.saturating_mul(1000) / tokens
    }
}

impl Client {
    /// Runs `g` on the market and waits for its verified result: the model is uploaded to
    /// the node only if the node does not hold it, the job runs the inference guest of
    /// `sietch-guests`, and the completions come back parsed.
    pub async fn generate(&self, g: &Generation) -> Result<Generated> {
        let model = match &g.model {
            Model::Blob(hash) => hash.clone(),
            Model::Bytes(bytes) => {
                let hash = format!("0x{}", blake3::hash(bytes).to_hex());
                if !self.has_blob(&hash).await? {
                    self.upload(bytes).await?;
                }
                hash
            }
        };
        let mut job = Job::new(sietch_guests::LLM.to_vec())
            .input_blob(sietch_guests::MODEL_INPUT, model)
            .input(sietch_guests::PROMPTS_INPUT, g.prompts_jsonl())
            .fuel(g.fuel)
            .memory_bytes(g.memory_bytes)
            .wall_time_ms(g.wall_time_ms)
            .output_bytes(4 << 20)
            .sampling_ppm(g.sampling_ppm)
            .price_cap(g.price_cap);
        if let Some(margin) = g.rescore {
            job = job.rescore(margin);
        }
        let done = self.run(&job).await?;
        let jsonl = done
            .outputs
            .file(sietch_guests::COMPLETIONS_OUTPUT)?
            .unwrap_or_default();
        let completions = parse_completions(&jsonl)?;
        Ok(Generated {
            prompt_tokens: completions.iter().map(|c| c.prompt_tokens).sum(),
            completion_tokens: completions.iter().map(|c| c.completion_tokens).sum(),
            completions,
            job: done,
        })
    }
}

/// The lines of `completions.jsonl`.
pub fn parse_completions(jsonl: &[u8]) -> Result<Vec<Completion>> {
    jsonl
        .split(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .map(|l| {
            serde_json::from_slice::<Completion>(l).map_err(|e| {
                let shown: Value = serde_json::from_slice(l).unwrap_or(Value::Null);
                Error::Decode(format!("a completion line {shown}: {e}"))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_are_written_as_the_guest_reads_them() {
        let g = Generation::new(
            Model::Blob("0x01".into()),
            vec![
                Prompt::new("What is the capital of France?").max_tokens(8),
                Prompt {
                    raw: true,
                    stop: vec!["\n".into()],
                    ..Prompt::new("1, 2, 3,")
                }
                .sample(0.7, 0.9, Some(5)),
            ],
        );
        let text = String::from_utf8(g.prompts_jsonl()).unwrap_or_default();
        assert_eq!(
            text,
            "{\"prompt\":\"What is the capital of France?\",\"max_tokens\":8}\n\
             {\"prompt\":\"1, 2, 3,\",\"raw\":true,\"temperature\":0.7,\"top_p\":0.9,\"seed\":5,\"stop\":[\"\\n\"]}\n"
        );
    }

    #[test]
    fn completions_are_read_and_a_bad_line_is_an_error() {
        let lines = b"{\"index\":0,\"text\":\"Paris.\",\"prompt_tokens\":30,\"completion_tokens\":3,\"finish\":\"stop\"}\n\
            {\"index\":1,\"text\":\"\",\"prompt_tokens\":0,\"completion_tokens\":0,\"finish\":\"error\",\"error\":\"prompt too long\"}\n";
        let c = parse_completions(lines).unwrap_or_default();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].text, "Paris.");
        assert_eq!(c[1].error.as_deref(), Some("prompt too long"));
        assert!(parse_completions(b"{\"index\":0}\nnot json\n").is_err());
    }
}
