//! Driving the load: workers take arrivals in schedule order, wait for each
//! one's intended send time, and measure latency from that time (as wrk2
//! does), so a stalled target shows up as latency of every request that was
//! due during the stall instead of silently delaying the schedule.

use crate::acked::AckedLog;
use crate::client::{connect, exchange, Requests, Sender};
use crate::scenario::{Arrival, Op, Source};
use crate::stats::{Outcome, Recorders, Totals};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Plan {
    pub source: Box<dyn Source>,
    /// Closed loop: each connection sends its next request as soon as the
    /// previous answer is in. Measures the ceiling, not latency under load.
    pub closed_loop: bool,
    /// Nothing due at or after this is sent.
    pub end: Option<Duration>,
    pub max_requests: Option<u64>,
    pub connections: usize,
    /// Sending threads, each with a single-threaded runtime of its own and
    /// its share of the connections (as wrk runs one event loop per thread).
    pub threads: usize,
    /// Counted from each request's intended send time.
    pub timeout: Duration,
    pub progress: bool,
    /// Where the names of users registered with a 201 go.
    pub acked: Option<Arc<AckedLog>>,
}

/// One second of the run, by completion time (intended: by due time).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TimelinePoint {
    pub second: u64,
    pub intended: u64,
    pub completed: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The same second per operation (by name), for the operations that
    /// completed any request in it.
    #[serde(default)]
    pub by_op: BTreeMap<String, OpPoint>,
}

/// One operation's requests completed in one second of the timeline.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OpPoint {
    pub completed: u64,
    pub errors: u64,
    /// Counts by outcome, named as in the report's `outcomes` (`"200"`,
    /// `"503"`, `"timeout"`, `"connection error"`, ...), expected or not.
    pub outcomes: BTreeMap<String, u64>,
}

pub struct RunData {
    pub totals: Totals,
    pub timeline: Vec<TimelinePoint>,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub elapsed: Duration,
    /// Arrivals taken from the schedule (sent or not).
    pub issued: u64,
    /// Requests that went out on a connection.
    pub sent: u64,
    /// The due time of the last arrival.
    pub last_due: Duration,
}

struct Dispatch {
    source: Box<dyn Source>,
    issued: u64,
    last_due: Duration,
    due_per_second: Vec<u64>,
    exhausted: bool,
}

struct Shared {
    dispatch: Mutex<Dispatch>,
    start: Instant,
    plan_end: Option<Duration>,
    max_requests: Option<u64>,
    closed_loop: bool,
    timeout: Duration,
    stop: Arc<AtomicBool>,
    sent: AtomicU64,
    requests: Arc<Requests>,
    recorders: Recorders,
    acked: Option<Arc<AckedLog>>,
}

impl Shared {
    /// The next arrival and the instant it is due, or `None` when the plan is
    /// done (its end, its request count, or Ctrl-C).
    fn next(&self) -> Option<(Arrival, Instant)> {
        if self.stop.load(Ordering::Relaxed) {
            return None;
        }
        let mut d = self.dispatch.lock().expect("dispatch lock");
        if d.exhausted {
            return None;
        }
        let arrival = match d.source.next_arrival() {
            Some(a) if self.max_requests.is_none_or(|max| d.issued < max) => a,
            _ => {
                d.exhausted = true;
                return None;
            }
        };
        let due = arrival.at.unwrap_or_else(|| self.start.elapsed());
        if self.plan_end.is_some_and(|end| due >= end) {
            d.exhausted = true;
            return None;
        }
        d.issued += 1;
        d.last_due = d.last_due.max(due);
        let second = due.as_secs() as usize;
        if d.due_per_second.len() <= second {
            d.due_per_second.resize(second + 1, 0);
        }
        d.due_per_second[second] += 1;
        Some((arrival, self.start + due))
    }
}

pub async fn run(plan: Plan, requests: Arc<Requests>) -> RunData {
    let connections = plan.connections.max(1);
    let threads = plan.threads.clamp(1, connections);
    let shared = Arc::new(Shared {
        dispatch: Mutex::new(Dispatch {
            source: plan.source,
            issued: 0,
            last_due: Duration::ZERO,
            due_per_second: Vec::new(),
            exhausted: false,
        }),
        start: Instant::now(),
        plan_end: plan.end,
        max_requests: plan.max_requests,
        closed_loop: plan.closed_loop,
        timeout: plan.timeout,
        stop: Arc::new(AtomicBool::new(false)),
        sent: AtomicU64::new(0),
        requests,
        // One shard per sending thread: its workers never wait on another's.
        recorders: Recorders::new(threads),
        acked: plan.acked,
    });
    let started_at = chrono::Utc::now();
    let progress = progress_bar(plan.progress, plan.end);
    let ctrl_c = {
        let stop = shared.stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.store(true, Ordering::Relaxed);
            }
        })
    };
    let mut workers = tokio::task::JoinSet::new();
    for thread in 0..threads {
        let shared = shared.clone();
        let (done, finished) = tokio::sync::oneshot::channel::<()>();
        let share = connections / threads + usize::from(thread < connections % threads);
        std::thread::Builder::new()
            .name(format!("load-{thread}"))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a sending runtime");
                runtime.block_on(async {
                    let mut local = tokio::task::JoinSet::new();
                    for _ in 0..share {
                        local.spawn(worker(shared.clone(), thread));
                    }
                    while local.join_next().await.is_some() {}
                });
                drop(runtime);
                drop(shared);
                let _ = done.send(());
            })
            .expect("a sending thread");
        workers.spawn(finished);
    }
    let mut timeline = Vec::new();
    let mut errors = 0;
    let mut ticks = tokio::time::interval_at(
        tokio::time::Instant::from_std(shared.start) + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    loop {
        tokio::select! {
            joined = workers.join_next() => if joined.is_none() { break },
            _ = ticks.tick() => {
                let point = timeline_point(timeline.len() as u64, shared.recorders.take_tick());
                progress.set_position(shared.start.elapsed().as_millis() as u64);
                errors += point.errors;
                progress.set_message(progress_message(&point, errors, shared.closed_loop));
                timeline.push(point);
            }
        }
    }
    let elapsed = shared.start.elapsed();
    timeline.push(timeline_point(
        timeline.len() as u64,
        shared.recorders.take_tick(),
    ));
    ctrl_c.abort();
    let _ = ctrl_c.await; // drops its clone of `shared` before into_inner
    progress.finish_and_clear();
    let shared = Arc::into_inner(shared).expect("workers are done");
    let dispatch = shared.dispatch.into_inner().expect("dispatch lock");
    for point in &mut timeline {
        point.intended = dispatch
            .due_per_second
            .get(point.second as usize)
            .copied()
            .unwrap_or(0);
    }
    RunData {
        totals: shared.recorders.into_totals(),
        timeline,
        started_at,
        elapsed,
        issued: dispatch.issued,
        sent: shared.sent.into_inner(),
        last_due: dispatch.last_due,
    }
}

async fn worker(shared: Arc<Shared>, id: usize) {
    let mut connection: Option<Sender> = None;
    while let Some((arrival, due)) = shared.next() {
        if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
        }
        let deadline = due + shared.timeout;
        let sent_at = Instant::now();
        if sent_at >= deadline {
            let late = sent_at - due;
            shared
                .recorders
                .record(id, arrival.op, Outcome::Unsent, late, None);
            continue;
        }
        let request = shared.requests.build(&arrival);
        let keep_body = arrival.op == Op::Login;
        shared.sent.fetch_add(1, Ordering::Relaxed);
        let answer = tokio::time::timeout_at(
            deadline.into(),
            send(&mut connection, &shared.requests, request, keep_body),
        )
        .await;
        let done = Instant::now();
        let outcome = match answer {
            Ok(Ok((status, body))) => {
                if keep_body && status == 200 {
                    shared.requests.tokens.remember(&body);
                }
                if let (Op::Register, 201, Some(acked)) = (arrival.op, status, &shared.acked) {
                    acked.record(&shared.requests.registered_name(arrival.user));
                }
                Outcome::Status(status)
            }
            Ok(Err(failure)) => failure,
            Err(_) => Outcome::Timeout,
        };
        if !matches!(outcome, Outcome::Status(_)) {
            // A connection with a request in flight cannot be reused.
            connection = None;
        }
        shared
            .recorders
            .record(id, arrival.op, outcome, done - due, Some(done - sent_at));
    }
}

async fn send(
    connection: &mut Option<Sender>,
    requests: &Requests,
    request: hyper::Request<http_body_util::Full<bytes::Bytes>>,
    keep_body: bool,
) -> Result<(u16, bytes::Bytes), Outcome> {
    // An idle connection the server closed is replaced before use: that is
    // keep-alive housekeeping, not an error of this request.
    let sender = match connection {
        Some(sender) if !sender.is_closed() => sender,
        _ => connection.insert(
            connect(&requests.target)
                .await
                .map_err(|_| Outcome::Connect)?,
        ),
    };
    exchange(sender, request, keep_body)
        .await
        .map_err(|_| Outcome::Io)
}

fn timeline_point(second: u64, tick: crate::stats::Tick) -> TimelinePoint {
    let ms = |h: &Histogram<u64>, q: f64| {
        if h.is_empty() {
            0.0
        } else {
            h.value_at_quantile(q) as f64 / 1000.0
        }
    };
    let mut by_op: BTreeMap<String, OpPoint> = BTreeMap::new();
    for ((op, outcome), n) in tick.counts {
        let point = by_op.entry(op.name().into()).or_default();
        point.completed += n;
        if outcome.is_error_for(op) {
            point.errors += n;
        }
        *point.outcomes.entry(outcome.to_string()).or_default() += n;
    }
    TimelinePoint {
        second,
        intended: 0,
        completed: tick.completed,
        errors: tick.errors,
        p50_ms: ms(&tick.latency, 0.5),
        p99_ms: ms(&tick.latency, 0.99),
        max_ms: ms(&tick.latency, 1.0),
        by_op,
    }
}

fn progress_message(point: &TimelinePoint, errors: u64, closed_loop: bool) -> String {
    let what = if closed_loop { "service p99" } else { "p99" };
    format!(
        "{}/s  {what} {:.1} ms  errors {errors}",
        point.completed, point.p99_ms
    )
}

fn progress_bar(enabled: bool, end: Option<Duration>) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    match end {
        Some(end) => ProgressBar::new(end.as_millis() as u64).with_style(
            ProgressStyle::with_template("{elapsed:>4} [{bar:24}] {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{elapsed:>4} {spinner} {msg}").expect("valid template"),
        ),
    }
}
