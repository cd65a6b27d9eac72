//! `sesame load seed`: the synthetic users the load logs in as.
//!
//! Fast path (`--database`): one Argon2id hash of the shared password, computed
//! once, written for every user by bulk import, thousands per transaction; 100k
//! users take seconds. The hash is a real one with the server's parameters, so
//! logins cost exactly what real ones do and no rehash-on-login skews the
//! first minutes. Users sharing a salt is fine for load-test accounts and
//! only for them.
//!
//! Slow path (`--target`): `POST /v1/users` for each user, as a real client
//! would; every registration costs the server a hash, so 100k users at
//! ~25 ms per hash per core take about 20 minutes on 2 cores.

use crate::client::{connect, exchange, Requests, Sender, Target, Tokens, Users};
use crate::SeedArgs;
use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use sesame_domain::{HashParams, NewUser, PasswordHasher, Username};
use sesame_storage::StorageConfig;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// What seeding did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seeded {
    pub created: u64,
    /// Already there (from an earlier seeding): left as they were.
    pub existing: u64,
}

pub async fn seed(args: &SeedArgs) -> anyhow::Result<Seeded> {
    let users = args.users.users();
    let started = Instant::now();
    let seeded = match (&args.database, &args.target) {
        (Some(database), _) => import(database, &users, args.hash.params(), args.batch).await?,
        (None, Some(target)) => {
            let target = Target::resolve(target, args.allow_remote).await?;
            register(target, users, args.connections, !args.no_progress).await?
        }
        (None, None) => bail!("say where to seed: --database URL (fast, direct import) or --target URL (through the API)"),
    };
    eprintln!(
        "seeded {} users ({} created, {} already there) in {:.1} s",
        args.users.count,
        seeded.created,
        seeded.existing,
        started.elapsed().as_secs_f64()
    );
    Ok(seeded)
}

async fn import(
    database: &str,
    users: &Users,
    params: HashParams,
    batch: usize,
) -> anyhow::Result<Seeded> {
    let stores = sesame_storage::open(&StorageConfig {
        database_url: database.to_owned(),
        ..StorageConfig::default()
    })
    .await
    .with_context(|| format!("opening {database}"))?;
    let hasher = PasswordHasher::new(params)?;
    let hash = hasher.hash(users.password.as_bytes())?;
    let now = chrono::Utc::now();
    let mut created = 0;
    let batch = batch.max(1) as u32;
    for first in (0..users.count).step_by(batch as usize) {
        let chunk = (first..users.count.min(first.saturating_add(batch)))
            .map(|n| {
                Ok(NewUser {
                    username: Username::parse(&users.name(n))
                        .with_context(|| format!("--user-prefix makes {:?}", users.name(n)))?,
                    password_hash: hash.clone(),
                    created_at: now,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        created += stores.users.import(&chunk).await?;
    }
    Ok(Seeded {
        created,
        existing: u64::from(users.count) - created,
    })
}

async fn register(
    target: Target,
    users: Users,
    connections: usize,
    progress: bool,
) -> anyhow::Result<Seeded> {
    let total = users.count;
    let requests = Arc::new(Requests {
        target,
        get_path: String::new(),
        users,
        clients: Vec::new(),
        tokens: Tokens::default(),
        run_id: String::new(),
    });
    let bar = if progress {
        ProgressBar::new(u64::from(total)).with_style(
            ProgressStyle::with_template("{elapsed:>4} [{bar:24}] {pos}/{len} users, {per_sec}")
                .expect("valid template")
                .progress_chars("=> "),
        )
    } else {
        ProgressBar::hidden()
    };
    let next = Arc::new(AtomicU32::new(0));
    let created = Arc::new(AtomicU64::new(0));
    let existing = Arc::new(AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..connections.max(1) {
        let (requests, next, created, existing, bar) = (
            requests.clone(),
            next.clone(),
            created.clone(),
            existing.clone(),
            bar.clone(),
        );
        workers.spawn(async move {
            let mut connection: Option<Sender> = None;
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return Ok(());
                }
                let (status, body) = register_one(&mut connection, &requests, n).await?;
                match status {
                    201 => created.fetch_add(1, Ordering::Relaxed),
                    409 => existing.fetch_add(1, Ordering::Relaxed),
                    other => bail!(
                        "registering {} answered HTTP {other}: {}",
                        requests.users.name(n),
                        String::from_utf8_lossy(&body)
                    ),
                };
                bar.inc(1);
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done??;
    }
    bar.finish_and_clear();
    Ok(Seeded {
        created: created.load(Ordering::Relaxed),
        existing: existing.load(Ordering::Relaxed),
    })
}

/// One registration; a shed (503) or rate-limited (429) one is retried a
/// second later, other failures stop the seeding.
async fn register_one(
    connection: &mut Option<Sender>,
    requests: &Requests,
    n: u32,
) -> anyhow::Result<(u16, bytes::Bytes)> {
    loop {
        let sender = match connection {
            Some(sender) if !sender.is_closed() => sender,
            _ => connection.insert(
                connect(&requests.target)
                    .await
                    .with_context(|| format!("cannot connect to {}", requests.target.url))?,
            ),
        };
        let (status, body) = exchange(sender, requests.register(&requests.users.name(n)), true)
            .await
            .context("registering through the API")?;
        if status != 503 && status != 429 {
            return Ok((status, body));
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}
