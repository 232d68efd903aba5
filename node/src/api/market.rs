//! `GET /api/v1/market`: the whole market as this node knows it, each part from one source:
//! the order book's prices over time by GPU model (gossip: the book sampled every
//! [`SAMPLE_EVERY`] by [`sample_book`]), the escrow's events it read (chain: totals, totals
//! over time and each provider's), the accounts its chain index holds (chain: registered
//! providers and their stake), and its own finished jobs (this node). The record is
//! `activity::market`, kept since the node started.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use sietch_market::book::OrderBook;

use super::Api;
use super::error::{ApiError, unavailable};
use crate::activity::{Activity, MarketView, OfferPrices};

/// How often the order book's prices are sampled.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_secs(10);

/// Samples the order book's prices every [`SAMPLE_EVERY`] into `activity`, for as long as the
/// API serves (the task is spawned beside its server).
pub(crate) async fn sample_book(book: Arc<Mutex<OrderBook>>, activity: Activity) {
    let clock = crate::net::system_clock();
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // Copy under the lock, count after it: the network actor shares the book.
        let offers: Vec<OfferPrices> = match book.lock() {
            Ok(b) => b
                .iter()
                .map(|s| OfferPrices {
                    gpus: s
                        .payload
                        .hardware
                        .gpus
                        .iter()
                        .map(|g| g.model.clone())
                        .collect(),
                    per_gfuel: s.payload.prices.per_gfuel,
                    per_gpu_second: s.payload.prices.per_gpu_second,
                })
                .collect(),
            Err(_) => continue,
        };
        activity.sample_offers(clock(), &offers);
    }
}

pub(crate) async fn market(State(api): State<Api>) -> Result<Json<Value>, ApiError> {
    let view = api
        .activity
        .market()
        .ok_or_else(|| unavailable("the node's record of the market is unavailable"))?;
    // Registered providers (an account that registered a node key) and their active stake.
    let registered = api.chain.as_ref().map(|c| {
        let accounts = c.accounts();
        let providers = accounts.iter().filter(|(_, a)| a.node_key != [0; 32]);
        let (n, stake) = providers.fold((0u64, 0u128), |(n, s), (_, a)| {
            (n + 1, s.saturating_add(a.stake))
        });
        json!({ "providers": n, "stake": stake.to_string() })
    });
    Ok(Json(answer(view, registered)))
}

/// The answer: the record, and the registered providers (null without a chain).
fn answer(view: MarketView, registered: Option<Value>) -> Value {
    json!({
        "since": view.since,
        "blocks": view.blocks.map(|(first, last)| json!({ "first": first, "last": last })),
        "sample_secs": SAMPLE_EVERY.as_secs(),
        "registered": registered,
        "totals": view.totals,
        "bucket_secs": view.bucket_secs,
        "buckets": view.buckets,
        "providers": view.providers,
        "prices": view.prices,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use serde_json::{Value, json};
    use sietch_contracts::SietchEscrow as E;
    use sietch_market::{Address, B256, U256};

    use super::answer;
    use crate::activity::OfferPrices;
    use crate::activity::market::Market;

    /// Every field of `value` (objects, and the first item of arrays) is in `schema`.
    fn documented(value: &Value, schema: &Value, at: &str, missing: &mut Vec<String>) {
        match value {
            Value::Object(fields) => {
                for (k, v) in fields {
                    let s = &schema["properties"][k];
                    if s.is_object() {
                        documented(v, s, &format!("{at}.{k}"), missing);
                    } else {
                        missing.push(format!("{at}.{k}"));
                    }
                }
            }
            Value::Array(items) => {
                if let Some(first) = items.first() {
                    documented(first, &schema["items"], &format!("{at}[]"), missing);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn the_openapi_market_schema_names_every_field_answered() {
        let doc: Value = serde_json::from_str(include_str!("openapi.json")).unwrap();
        let schema = &doc["components"]["schemas"]["Market"];
        let mut m = Market::default();
        m.chain_event(
            3,
            1_000,
            &E::SietchEscrowEvents::VoucherClaimed(E::VoucherClaimed {
                channelId: B256::repeat_byte(1),
                provider: Address::repeat_byte(2),
                cumulativeAmount: U256::from(5),
                amount: U256::from(5),
                paid: U256::from(5),
            }),
        );
        m.sample_offers(
            1_000,
            &[OfferPrices {
                gpus: vec!["A100".into()],
                per_gfuel: 1,
                per_gpu_second: 1,
            }],
        );
        let v = answer(m.view(), Some(json!({"providers": 1, "stake": "10"})));
        let mut missing = Vec::new();
        documented(&v, schema, "Market", &mut missing);
        assert_eq!(missing, Vec::<String>::new(), "answered, undocumented");
        assert_eq!(v["totals"]["volume"], json!("5"));
        assert_eq!(v["prices"][0]["points"][0]["min_gpu_hour"], json!("3600"));
    }
}
