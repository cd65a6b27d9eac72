//! The hash pool: a fixed set of OS threads (never tokio's unbounded blocking
//! pool: 500 concurrent 19 MiB hashes would be 10 GB) fed by a queue that is
//! bounded by a latency budget rather than by a count.
//!
//! Admission is decided up front: a job that would wait longer than the
//! budget allows is refused at once ([`PoolError::Overloaded`]) so the caller
//! can answer 503 in microseconds instead of queueing for seconds. A job whose
//! deadline can no longer be met, or whose caller went away, is dropped before
//! it is hashed.

use crate::hashing::{HashError, PasswordHasher, Verification};
use crate::password::Password;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// A job is admitted only if its predicted wait and hash fit in this share
/// of the time left to its deadline. The rest is slack for the prediction's
/// error (hashes slowed by a busy machine, the estimate lagging): without
/// it, a queue held at the admission bound keeps admitting jobs that expire
/// later, answered 503 after waiting most of the budget instead of at once.
/// It is the most the share may be: each job that expires in the queue
/// anyway (hashes slower than the estimate said, on a machine whose load
/// varies) shrinks it by `EXPIRY_BACKOFF`, down to `MIN_ADMISSION_SHARE`,
/// and each job done in time gives a little back. The slack follows the
/// estimate's observed error instead of a guess at it.
const ADMISSION_SHARE: f64 = 0.8;
const MIN_ADMISSION_SHARE: f64 = 0.3;
const EXPIRY_BACKOFF: f64 = 0.9;
/// About sixteen jobs done in time undo one expiry.
const ON_TIME_RECOVERY: f64 = 0.005;

/// Hard cap on queued jobs per worker, whatever the estimate says: it bounds
/// memory if hashes suddenly get much slower than the estimate.
const MAX_QUEUED_PER_WORKER: usize = 256;

/// An idle pool that has completed no hash for this long admits one job
/// whatever the estimate says (a probe), and takes the estimate from it.
/// The estimate is learnt only from completed hashes: after a spell of
/// slow hashes (a starved CPU) it would otherwise refuse every login, and
/// with no hash completing it would never come down again.
const PROBE_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("hash queue is full; retry after {retry_after:?}")]
    Overloaded { retry_after: Duration },
    #[error("deadline passed before the hash could start")]
    Expired,
    #[error("hash pool is shut down")]
    Closed,
}

/// Time a job spent waiting and hashing.
#[derive(Debug, Clone, Copy, Default)]
pub struct JobTimings {
    pub queue: Duration,
    pub hash: Duration,
}

/// A snapshot of the pool, for metrics and readiness.
#[derive(Debug, Clone, Copy)]
pub struct PoolStats {
    pub workers: usize,
    pub queued: usize,
    pub busy: usize,
    pub hash_estimate: Duration,
    pub shed: u64,
    pub expired: u64,
    pub abandoned: u64,
    pub completed: u64,
    /// The share of the time left a job's predicted wait and hash may take.
    pub admission_share: f64,
}

enum Work {
    Verify { password: Password, phc: Arc<str> },
    Hash { password: Password },
}

enum Done {
    Verified(Verification),
    Hashed(Result<String, HashError>),
}

type Reply = oneshot::Sender<Result<(Done, JobTimings), PoolError>>;

struct Job {
    work: Work,
    enqueued: Instant,
    deadline: Instant,
    /// Admitted against the estimate's advice, to measure it anew.
    probe: bool,
    reply: Reply,
}

struct Shared {
    workers: usize,
    queued: AtomicUsize,
    busy: AtomicUsize,
    /// Moving average of one hash, in nanoseconds.
    hash_ns: AtomicU64,
    shed: AtomicU64,
    expired: AtomicU64,
    abandoned: AtomicU64,
    completed: AtomicU64,
    /// When the pool started: the origin of `last_done_ns`.
    epoch: Instant,
    /// When the last hash completed, in nanoseconds since `epoch`.
    last_done_ns: AtomicU64,
    /// A probe is queued or hashing.
    probing: AtomicBool,
    /// The share of the time left that a job's wait and hash may fill to be
    /// admitted (an f64's bits), within [MIN_ADMISSION_SHARE, ADMISSION_SHARE].
    admission_share: AtomicU64,
}

impl Shared {
    fn hash_estimate(&self) -> Duration {
        Duration::from_nanos(self.hash_ns.load(Ordering::Relaxed))
    }

    fn record_hash(&self, took: Duration) {
        // EWMA with weight 1/8: follows a parameter change within a few dozen
        // hashes, ignores single outliers.
        let sample = took.as_nanos().min(u128::from(u64::MAX)) as u64;
        let _ = self
            .hash_ns
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(old - old / 8 + sample / 8)
            });
    }

    fn admission_share(&self) -> f64 {
        f64::from_bits(self.admission_share.load(Ordering::Relaxed))
    }

    fn adjust_admission_share(&self, change: impl Fn(f64) -> f64) {
        let _ = self
            .admission_share
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                let share =
                    change(f64::from_bits(bits)).clamp(MIN_ADMISSION_SHARE, ADMISSION_SHARE);
                Some(share.to_bits())
            });
    }

    /// Whether a job refused by the estimate may go as a probe: the pool is
    /// idle and no hash has completed for `PROBE_AFTER`.
    fn probe_due(&self, now: Instant) -> bool {
        let idle = self.queued.load(Ordering::Relaxed) == 0
            && self.busy.load(Ordering::Relaxed) == 0
            && !self.probing.load(Ordering::Relaxed);
        let last = self.epoch + Duration::from_nanos(self.last_done_ns.load(Ordering::Relaxed));
        idle && now.saturating_duration_since(last) >= PROBE_AFTER
    }

    /// Expected wait before a job enqueued now starts hashing.
    fn expected_wait(&self) -> Duration {
        let ahead = self.queued.load(Ordering::Relaxed) + self.busy.load(Ordering::Relaxed);
        let rounds = ahead / self.workers;
        self.hash_estimate() * u32::try_from(rounds).unwrap_or(u32::MAX)
    }
}

/// A fixed pool of hashing threads with latency-budget admission.
#[derive(Clone)]
pub struct HashPool {
    sender: crossbeam_channel::Sender<Job>,
    shared: Arc<Shared>,
    hasher: PasswordHasher,
}

impl HashPool {
    /// Starts `workers` threads. The first hash estimate is measured here, by
    /// hashing once, so admission is right from the first request.
    pub fn start(hasher: PasswordHasher, workers: usize) -> Self {
        let workers = workers.max(1);
        let started = Instant::now();
        let _ = hasher.hash(b"sesame-calibration");
        let first_estimate = started.elapsed();
        let shared = Arc::new(Shared {
            workers,
            queued: AtomicUsize::new(0),
            busy: AtomicUsize::new(0),
            hash_ns: AtomicU64::new(first_estimate.as_nanos() as u64),
            shed: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            abandoned: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            epoch: started,
            last_done_ns: AtomicU64::new(first_estimate.as_nanos() as u64),
            probing: AtomicBool::new(false),
            admission_share: AtomicU64::new(ADMISSION_SHARE.to_bits()),
        });
        let (sender, receiver) = crossbeam_channel::bounded::<Job>(workers * MAX_QUEUED_PER_WORKER);
        for i in 0..workers {
            let receiver = receiver.clone();
            let shared = shared.clone();
            let hasher = hasher.clone();
            std::thread::Builder::new()
                .name(format!("sesame-hash-{i}"))
                .spawn(move || worker(receiver, shared, hasher))
                .expect("spawn hash worker");
        }
        Self {
            sender,
            shared,
            hasher,
        }
    }

    pub fn hasher(&self) -> &PasswordHasher {
        &self.hasher
    }

    pub fn stats(&self) -> PoolStats {
        let s = &self.shared;
        PoolStats {
            workers: s.workers,
            queued: s.queued.load(Ordering::Relaxed),
            busy: s.busy.load(Ordering::Relaxed),
            hash_estimate: s.hash_estimate(),
            shed: s.shed.load(Ordering::Relaxed),
            expired: s.expired.load(Ordering::Relaxed),
            abandoned: s.abandoned.load(Ordering::Relaxed),
            completed: s.completed.load(Ordering::Relaxed),
            admission_share: s.admission_share(),
        }
    }

    /// Verifies `password` against `phc` if it can finish by `deadline`.
    pub async fn verify(
        &self,
        password: Password,
        phc: Arc<str>,
        deadline: Instant,
    ) -> Result<(Verification, JobTimings), PoolError> {
        match self
            .submit(Work::Verify { password, phc }, deadline)
            .await?
        {
            (Done::Verified(v), t) => Ok((v, t)),
            (Done::Hashed(_), _) => unreachable!("verify job answered with a hash"),
        }
    }

    /// Hashes `password` with the current parameters if it can finish by `deadline`.
    pub async fn hash(
        &self,
        password: Password,
        deadline: Instant,
    ) -> Result<(Result<String, HashError>, JobTimings), PoolError> {
        match self.submit(Work::Hash { password }, deadline).await? {
            (Done::Hashed(h), t) => Ok((h, t)),
            (Done::Verified(_), _) => unreachable!("hash job answered with a verification"),
        }
    }

    /// Whether a job due by `deadline` would be admitted now; a refusal is
    /// counted as shed. Callers ask before work that only makes sense if the
    /// hash will run (a login's database lookup), so an overloaded service
    /// sheds without touching the database. On admission, answers the latest
    /// time the job can still be submitted and admitted if the queue does
    /// not grow meanwhile: the time the work before it may take.
    pub fn admit(&self, deadline: Instant) -> Result<Instant, PoolError> {
        let now = Instant::now();
        match self.admission(now, deadline)? {
            Admission::Estimated(wait) => {
                let needed =
                    (wait + self.shared.hash_estimate()).div_f64(self.shared.admission_share());
                Ok(deadline.checked_sub(needed).unwrap_or(now))
            }
            // The estimate is not to be trusted: the work before may take
            // the whole budget.
            Admission::Probe => Ok(deadline),
        }
    }

    /// Whether a job due by `deadline` is admitted at `now`, and on what
    /// grounds.
    fn admission(&self, now: Instant, deadline: Instant) -> Result<Admission, PoolError> {
        let s = &self.shared;
        let wait = s.expected_wait();
        let left = deadline.saturating_duration_since(now);
        if wait + s.hash_estimate() <= left.mul_f64(s.admission_share()) {
            return Ok(Admission::Estimated(wait));
        }
        if s.probe_due(now) {
            return Ok(Admission::Probe);
        }
        s.shed.fetch_add(1, Ordering::Relaxed);
        Err(PoolError::Overloaded {
            retry_after: retry_after(wait),
        })
    }

    async fn submit(&self, work: Work, deadline: Instant) -> Result<(Done, JobTimings), PoolError> {
        let s = &self.shared;
        let now = Instant::now();
        let (wait, probe) = match self.admission(now, deadline)? {
            Admission::Estimated(wait) => (wait, false),
            Admission::Probe => {
                // One probe at a time; a second one is shed.
                if s.probing.swap(true, Ordering::Relaxed) {
                    s.shed.fetch_add(1, Ordering::Relaxed);
                    return Err(PoolError::Overloaded {
                        retry_after: retry_after(Duration::ZERO),
                    });
                }
                (Duration::ZERO, true)
            }
        };
        let (reply, answer) = oneshot::channel();
        s.queued.fetch_add(1, Ordering::Relaxed);
        let job = Job {
            work,
            enqueued: now,
            deadline,
            probe,
            reply,
        };
        if let Err(e) = self.sender.try_send(job) {
            s.queued.fetch_sub(1, Ordering::Relaxed);
            if probe {
                s.probing.store(false, Ordering::Relaxed);
            }
            return Err(match e {
                crossbeam_channel::TrySendError::Full(_) => {
                    s.shed.fetch_add(1, Ordering::Relaxed);
                    PoolError::Overloaded {
                        retry_after: retry_after(wait),
                    }
                }
                crossbeam_channel::TrySendError::Disconnected(_) => PoolError::Closed,
            });
        }
        answer.await.map_err(|_| PoolError::Closed)?
    }
}

/// Why a job was admitted.
enum Admission {
    /// The expected wait and hash fit the time left.
    Estimated(Duration),
    /// Against the estimate, to measure it anew.
    Probe,
}

/// Whole seconds to suggest in Retry-After: at least one.
fn retry_after(wait: Duration) -> Duration {
    Duration::from_secs(wait.as_secs().max(1))
}

/// Niceness of hashing threads: on a saturated machine the threads that
/// answer requests (a 429, a 503, a session check) run first, so cheap
/// answers stay fast while the hashes take the rest of the CPU.
const HASH_THREAD_NICE: i32 = 10;

fn worker(receiver: crossbeam_channel::Receiver<Job>, shared: Arc<Shared>, hasher: PasswordHasher) {
    // SAFETY: setpriority on this thread's own id has no memory effects; on
    // Linux the niceness is per thread. Failure only leaves it at 0.
    #[cfg(target_os = "linux")]
    unsafe {
        libc::setpriority(
            libc::PRIO_PROCESS,
            libc::gettid() as libc::id_t,
            HASH_THREAD_NICE,
        );
    }
    crate::hashing::keep_memory_on_this_thread();
    while let Ok(job) = receiver.recv() {
        shared.queued.fetch_sub(1, Ordering::Relaxed);
        let started = Instant::now();
        if job.reply.is_closed() {
            shared.abandoned.fetch_add(1, Ordering::Relaxed);
            if job.probe {
                shared.probing.store(false, Ordering::Relaxed);
            }
            continue;
        }
        if !job.probe && started + shared.hash_estimate() > job.deadline {
            shared.expired.fetch_add(1, Ordering::Relaxed);
            shared.adjust_admission_share(|share| share * EXPIRY_BACKOFF);
            let _ = job.reply.send(Err(PoolError::Expired));
            continue;
        }
        shared.busy.fetch_add(1, Ordering::Relaxed);
        let done = match job.work {
            Work::Verify { password, phc } => {
                Done::Verified(hasher.verify(password.expose(), &phc))
            }
            Work::Hash { password } => Done::Hashed(hasher.hash(password.expose())),
        };
        let finished = Instant::now();
        shared.busy.fetch_sub(1, Ordering::Relaxed);
        if job.probe {
            // A hash on an idle pool is the measurement the estimate lacked.
            shared.hash_ns.store(
                (finished - started).as_nanos().min(u128::from(u64::MAX)) as u64,
                Ordering::Relaxed,
            );
            shared.probing.store(false, Ordering::Relaxed);
        } else {
            shared.record_hash(finished - started);
        }
        if finished <= job.deadline {
            shared.adjust_admission_share(|share| share + ON_TIME_RECOVERY);
        }
        shared.last_done_ns.store(
            (finished - shared.epoch)
                .as_nanos()
                .min(u128::from(u64::MAX)) as u64,
            Ordering::Relaxed,
        );
        shared.completed.fetch_add(1, Ordering::Relaxed);
        let timings = JobTimings {
            queue: started - job.enqueued,
            hash: finished - started,
        };
        let _ = job.reply.send(Ok((done, timings)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hashing::HashParams;
    use crate::password::PasswordPolicy;

    fn pool(workers: usize, m_cost: u32) -> HashPool {
        let hasher = PasswordHasher::new(HashParams {
            m_cost,
            t_cost: 1,
            p_cost: 1,
        })
        .unwrap();
        HashPool::start(hasher, workers)
    }

    fn pw(s: &str) -> Password {
        Password::parse(s, &PasswordPolicy::default()).unwrap()
    }

    #[tokio::test]
    async fn hashes_and_verifies() {
        let pool = pool(2, 64);
        let far = Instant::now() + Duration::from_secs(10);
        let (phc, _) = pool.hash(pw("secret-one"), far).await.unwrap();
        let phc: Arc<str> = phc.unwrap().into();
        let (v, t) = pool
            .verify(pw("secret-one"), phc.clone(), far)
            .await
            .unwrap();
        assert!(v.matches);
        assert!(t.hash > Duration::ZERO);
        let (v, _) = pool.verify(pw("secret-two"), phc, far).await.unwrap();
        assert!(!v.matches);
    }

    #[tokio::test]
    async fn a_deadline_that_cannot_be_met_is_refused_at_once() {
        let pool = pool(1, 4096);
        let started = Instant::now();
        let err = pool
            .hash(pw("whatever-pw"), Instant::now())
            .await
            .unwrap_err();
        assert!(
            matches!(err, PoolError::Overloaded { retry_after } if retry_after >= Duration::from_secs(1))
        );
        assert!(started.elapsed() < Duration::from_millis(50));
        assert_eq!(pool.stats().shed, 1);
    }

    #[tokio::test]
    async fn the_queue_is_bounded_by_the_budget() {
        // One worker, a budget of about three hashes: of many simultaneous
        // jobs only a handful are admitted, the rest are shed, none waits long.
        let pool = pool(1, 8192);
        let one = pool.stats().hash_estimate;
        let deadline = Instant::now() + one * 3;
        let jobs: Vec<_> = (0..40)
            .map(|i| {
                let pool = pool.clone();
                tokio::spawn(async move { pool.hash(pw(&format!("password-{i}")), deadline).await })
            })
            .collect();
        let mut admitted = 0;
        for j in jobs {
            if j.await.unwrap().is_ok() {
                admitted += 1;
            }
        }
        let stats = pool.stats();
        assert!((1..=5).contains(&admitted), "admitted {admitted}");
        assert_eq!(stats.shed + stats.expired + admitted as u64, 40);
    }

    #[tokio::test]
    async fn abandoned_jobs_are_not_hashed() {
        // Heavy enough that the busy hash outlasts the five give-ups below.
        let pool = pool(1, 65536);
        let far = Instant::now() + Duration::from_secs(30);
        // Occupy the worker, then queue jobs whose callers give up.
        let busy = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.hash(pw("keeps-it-busy"), far).await })
        };
        tokio::time::sleep(Duration::from_millis(2)).await;
        for i in 0..5 {
            let fut = pool.hash(pw(&format!("gone-{i}-pw")), far);
            // Dropped after a moment: the caller went away.
            let _ = tokio::time::timeout(Duration::from_micros(100), fut).await;
        }
        busy.await.unwrap().unwrap().0.unwrap();
        // Let the worker drain the queue.
        let (_, _) = pool.hash(pw("after-pw-x"), far).await.unwrap();
        let stats = pool.stats();
        assert_eq!(stats.abandoned, 5, "{stats:?}");
        assert_eq!(stats.completed, 2, "{stats:?}");
    }

    #[tokio::test]
    async fn an_estimate_stuck_too_high_is_measured_anew_by_a_probe() {
        let pool = pool(1, 1024);
        let real = pool.stats().hash_estimate;
        // A spell of starved hashes left the estimate far above the budget:
        // every job is refused, and none completes to correct it.
        pool.shared.hash_ns.store(10_000_000_000, Ordering::Relaxed);
        let budget = Duration::from_millis(500);
        assert!(pool.admit(Instant::now() + budget).is_err());
        assert!(pool
            .hash(pw("refused-pw"), Instant::now() + budget)
            .await
            .is_err());

        // Idle for a while: one job goes through as a probe, hashes, and
        // its measurement replaces the estimate.
        tokio::time::sleep(PROBE_AFTER + Duration::from_millis(50)).await;
        let lookup_by = pool.admit(Instant::now() + budget).expect("probe admitted");
        assert!(
            lookup_by > Instant::now() + budget / 2,
            "a probe trusts no estimate"
        );
        let (phc, _) = pool
            .hash(pw("probe-pw"), Instant::now() + budget)
            .await
            .unwrap();
        assert!(phc.is_ok());
        let estimate = pool.stats().hash_estimate;
        assert!(estimate < real * 20, "estimate {estimate:?}, real {real:?}");
        // And normal admission is back.
        let (after, _) = pool
            .hash(pw("after-pw"), Instant::now() + budget)
            .await
            .unwrap();
        assert!(after.is_ok());
    }

    #[tokio::test]
    async fn jobs_that_expire_anyway_make_admission_keep_more_slack() {
        let pool = pool(1, 1024);
        assert_eq!(pool.stats().admission_share, ADMISSION_SHARE);
        // Hashes much slower than the estimate says: what a busy machine
        // does to a pool whose estimate was learnt while it was quiet.
        let real = pool.stats().hash_estimate;
        pool.shared.hash_ns.store(1_000, Ordering::Relaxed);
        let jobs: Vec<_> = (0..8)
            .map(|i| {
                let pool = pool.clone();
                let deadline = Instant::now() + real * 2;
                tokio::spawn(async move { pool.hash(pw(&format!("slow-{i}-pw")), deadline).await })
            })
            .collect();
        for j in jobs {
            let _ = j.await.unwrap();
        }
        let stats = pool.stats();
        assert!(stats.expired > 0, "{stats:?}");
        assert!(stats.admission_share < ADMISSION_SHARE, "{stats:?}");
        assert!(stats.admission_share >= MIN_ADMISSION_SHARE);
        // Jobs done in time give the slack back, a little each.
        let far = Instant::now() + Duration::from_secs(30);
        for i in 0..400 {
            pool.hash(pw(&format!("fast-{i}-pw")), far)
                .await
                .unwrap()
                .0
                .unwrap();
            if pool.stats().admission_share >= ADMISSION_SHARE {
                return;
            }
        }
        panic!("the share never came back: {:?}", pool.stats());
    }
}
