//! One side of the comparison from Prometheus' HTTP API, the way Kayenta
//! reads a metric: latency as one quantile per step over the window (each
//! step a sample for the U test), attempts and error counts as increases over
//! the whole window. Everything comes from `sesame serve`'s login histogram,
//! `sesame_login_duration_seconds{outcome,...}`, whose `_count` by outcome
//! counts attempts the way the SLO rules in deploy/prometheus do.

use super::judge::Observations;
use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use sesame_domain::event::Outcome;
use std::time::Duration;

/// Outcomes answered 5xx (as the availability SLI counts them).
/// The outcomes that count as the service failing (the SLO's errors), as a
/// PromQL regex alternation.
pub fn error_outcomes() -> String {
    Outcome::ALL
        .into_iter()
        .filter(|o| o.is_service_error())
        .map(Outcome::as_str)
        .collect::<Vec<_>>()
        .join("|")
}

/// When and how finely to look.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub end: DateTime<Utc>,
    pub length: Duration,
    pub step: Duration,
    /// Latency quantile per step, e.g. 0.99.
    pub quantile: f64,
}

impl Window {
    // A rate() range must span a few scrapes; one minute holds four at the
    // usual 15 s interval.
    fn rate_range(&self) -> u64 {
        self.step.as_secs().max(60)
    }
}

/// The PromQL this judge runs for one side, by metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Queries {
    pub latency_seconds: String,
    pub attempts: String,
    pub errors: String,
    pub auth_failures: String,
}

impl Queries {
    pub fn new(selector: &str, window: &Window) -> anyhow::Result<Self> {
        let sel = inner_selector(selector)?;
        let range = window.length.as_secs();
        let logins = |outcome: &str| {
            format!(
                r#"sum(increase(sesame_login_duration_seconds_count{{{outcome},{sel}}}[{range}s]))"#
            )
        };
        let (ok, denied, bad) = (
            Outcome::Ok.as_str(),
            Outcome::InvalidCredentials.as_str(),
            Outcome::BadRequest.as_str(),
        );
        Ok(Self {
            latency_seconds: format!(
                r#"histogram_quantile({q}, sum by (le) (rate(sesame_login_duration_seconds_bucket{{outcome=~"{ok}|{denied}",{sel}}}[{r}s])))"#,
                q = window.quantile,
                r = window.rate_range(),
            ),
            // bad_request is the caller's fault: not an attempt, as in the SLO.
            attempts: logins(&format!(r#"outcome!="{bad}""#)),
            errors: logins(&format!(r#"outcome=~"{}""#, error_outcomes())),
            auth_failures: logins(&format!(r#"outcome="{denied}""#)),
        })
    }
}

/// `track="canary"` or `{track="canary",app="sesame"}` → the matchers inside
/// the braces, ready to join with the judge's own.
pub fn inner_selector(selector: &str) -> anyhow::Result<String> {
    let s = selector.trim();
    let s = s
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .unwrap_or(s)
        .trim();
    if s.is_empty() {
        bail!("empty label selector: name the pods of this side, e.g. track=\"canary\"");
    }
    if s.contains(['{', '}']) || !s.contains('=') {
        bail!("{selector:?} is not a label selector such as track=\"canary\"");
    }
    Ok(s.to_owned())
}

pub struct Client {
    base: String,
    http: reqwest::blocking::Client,
}

impl Client {
    pub fn new(base_url: &str) -> anyhow::Result<Self> {
        Ok(Self {
            base: base_url.trim_end_matches('/').to_owned(),
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
        })
    }

    pub fn observe(&self, selector: &str, window: &Window) -> anyhow::Result<Observations> {
        let q = Queries::new(selector, window)?;
        let latency_ms = self
            .range(&q.latency_seconds, window)?
            .into_iter()
            .map(|s| s * 1e3)
            .collect();
        Ok(Observations {
            latency_ms,
            attempts: self.count(&q.attempts, window.end)?,
            errors: self.count(&q.errors, window.end)?,
            auth_failures: self.count(&q.auth_failures, window.end)?,
        })
    }

    /// Every finite value of every series over the window.
    fn range(&self, query: &str, window: &Window) -> anyhow::Result<Vec<f64>> {
        let start = window.end - chrono::Duration::from_std(window.length)?;
        let data = self.get(
            "query_range",
            &[
                ("query", query.to_owned()),
                ("start", unix(start)),
                ("end", unix(window.end)),
                ("step", format!("{}s", window.step.as_secs().max(1))),
            ],
        )?;
        let mut values = Vec::new();
        for series in data.result {
            for (_, v) in series.values {
                let v: f64 = v.parse().with_context(|| format!("sample {v:?}"))?;
                // A step without traffic has no quantile (NaN): no sample.
                if v.is_finite() {
                    values.push(v);
                }
            }
        }
        Ok(values)
    }

    /// The sum of an instant vector, as a whole count.
    fn count(&self, query: &str, at: DateTime<Utc>) -> anyhow::Result<u64> {
        let data = self.get("query", &[("query", query.to_owned()), ("time", unix(at))])?;
        let mut total = 0.0;
        for series in data.result {
            if let Some((_, v)) = series.value {
                let v: f64 = v.parse().with_context(|| format!("sample {v:?}"))?;
                if v.is_finite() {
                    total += v;
                }
            }
        }
        // increase() extrapolates to fractions of a request.
        Ok(total.round() as u64)
    }

    fn get(&self, endpoint: &str, params: &[(&str, String)]) -> anyhow::Result<Data> {
        let url = format!("{}/api/v1/{endpoint}", self.base);
        let query = &params[0].1;
        let response: ApiResponse = self
            .http
            .get(&url)
            .query(params)
            .send()
            .with_context(|| format!("asking {url}"))?
            .json()
            .with_context(|| format!("reading {url}'s answer to {query}"))?;
        match response {
            ApiResponse {
                status,
                data: Some(data),
                ..
            } if status == "success" => Ok(data),
            ApiResponse { error, .. } => bail!(
                "Prometheus refused {query}: {}",
                error.unwrap_or_else(|| "no data".into())
            ),
        }
    }
}

fn unix(t: DateTime<Utc>) -> String {
    format!("{:.3}", t.timestamp_millis() as f64 / 1e3)
}

#[derive(Deserialize)]
struct ApiResponse {
    status: String,
    data: Option<Data>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    result: Vec<Series>,
}

#[derive(Deserialize)]
struct Series {
    #[serde(default)]
    values: Vec<(f64, String)>,
    value: Option<(f64, String)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window() -> Window {
        Window {
            end: "2026-11-26T07:00:00Z".parse().unwrap(),
            length: Duration::from_secs(600),
            step: Duration::from_secs(30),
            quantile: 0.99,
        }
    }

    #[test]
    fn selectors_with_or_without_braces() {
        assert_eq!(
            inner_selector("track=\"canary\"").unwrap(),
            "track=\"canary\""
        );
        assert_eq!(
            inner_selector(" {track=\"stable\", app=\"sesame\"} ").unwrap(),
            "track=\"stable\", app=\"sesame\""
        );
        assert!(inner_selector("{}").is_err());
        assert!(inner_selector("canary").is_err());
        assert!(inner_selector("a=\"1\"} or vector(1) {").is_err());
    }

    #[test]
    fn queries_use_the_exported_metric_names() {
        let q = Queries::new("track=\"canary\"", &window()).unwrap();
        assert_eq!(
            q.latency_seconds,
            r#"histogram_quantile(0.99, sum by (le) (rate(sesame_login_duration_seconds_bucket{outcome=~"ok|invalid_credentials",track="canary"}[60s])))"#
        );
        assert_eq!(
            q.errors,
            r#"sum(increase(sesame_login_duration_seconds_count{outcome=~"overloaded|unavailable|error",track="canary"}[600s]))"#
        );
        assert_eq!(
            q.attempts,
            r#"sum(increase(sesame_login_duration_seconds_count{outcome!="bad_request",track="canary"}[600s]))"#
        );
    }
}
