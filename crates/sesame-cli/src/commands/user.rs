use super::shared::{runtime, HashArgs, StorageArgs};
use super::UsageError;
use anyhow::{bail, Context};
use sesame_domain::{
    HashPool, LoginService, LoginSettings, Password, PasswordHasher, SystemClock, Username,
};
use std::io::BufRead;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, clap::Subcommand)]
pub enum UserCommand {
    /// Create a user. The password is prompted for, or read from stdin.
    Add(UserArgs),
    /// Set a user's password and revoke all their sessions.
    Passwd(UserArgs),
    /// Delete a user and their sessions.
    Remove(UserArgs),
    /// List users in name order.
    List {
        #[command(flatten)]
        storage: StorageArgs,
        /// Start after this user name.
        #[arg(long)]
        after: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}

#[derive(Debug, clap::Args)]
pub struct UserArgs {
    /// The user name.
    user: String,
    /// Read the password from the first line of stdin instead of prompting.
    #[arg(long)]
    password_stdin: bool,
    #[command(flatten)]
    storage: StorageArgs,
    #[command(flatten)]
    hash: HashArgs,
}

pub fn run(cmd: UserCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async move {
        match cmd {
            UserCommand::Add(args) => {
                Username::parse_new(&args.user)?; // new names may not mix scripts
                can_read_password(&args, "add")?;
                let (service, user) = service(&args).await?;
                let password = read_password(&args)?;
                service.register(&user, password, None).await?;
                println!("created {user}");
            }
            UserCommand::Passwd(args) => {
                can_read_password(&args, "passwd")?;
                let (service, user) = service(&args).await?;
                let password = read_password(&args)?;
                service
                    .reset_password(&user, password)
                    .await
                    .map_err(|e| match e {
                        sesame_domain::AuthError::InvalidCredentials => {
                            anyhow::anyhow!("no such user: {user}")
                        }
                        other => other.into(),
                    })?;
                println!("password changed for {user}; sessions revoked");
            }
            UserCommand::Remove(args) => {
                let stores = sesame_storage::open(&args.storage.storage_config()).await?;
                let user = Username::parse(&args.user)?;
                // Sessions may live apart from the users table (Redis):
                // revoke them first so none outlives the account.
                let (record, _) = stores.users.find_for_login(&user).await?;
                let record = record.with_context(|| format!("no such user: {user}"))?;
                stores.sessions.revoke_all(record.id).await?;
                stores
                    .users
                    .remove(&user)
                    .await
                    .with_context(|| format!("removing {user}"))?;
                println!("removed {user}");
            }
            UserCommand::List {
                storage,
                after,
                limit,
            } => {
                let stores = sesame_storage::open(&storage.storage_config()).await?;
                let after = after.as_deref().map(Username::parse).transpose()?;
                for u in stores.users.list(after.as_ref(), limit).await? {
                    println!("{}\t{}", u.username, u.created_at.to_rfc3339());
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

async fn service(args: &UserArgs) -> anyhow::Result<(LoginService, Username)> {
    let user = Username::parse(&args.user)?;
    let stores = sesame_storage::open(&args.storage.storage_config()).await?;
    let pool = HashPool::start(PasswordHasher::new(args.hash.params())?, 1);
    let settings = LoginSettings {
        // An operator waits for the hash; no budget to enforce here.
        latency_budget: Duration::from_secs(60),
        ..LoginSettings::default()
    };
    let service = LoginService::new(
        stores.users,
        stores.sessions,
        pool,
        Arc::new(SystemClock),
        settings,
    )?;
    Ok((service, user))
}

/// Without --password-stdin the password is prompted for on the
/// controlling terminal (/dev/tty, whatever stdin is). Checked before the
/// database is opened: without a terminal that is a usage error, said as one,
/// not the bare ENXIO of opening /dev/tty.
fn can_read_password(args: &UserArgs, command: &str) -> anyhow::Result<()> {
    if args.password_stdin {
        return Ok(());
    }
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
    {
        Ok(_) => Ok(()),
        Err(e) => Err(UsageError(format!(
            "`sesame user {command}` needs a terminal to prompt for the password, \
             or --password-stdin to read it from the first line of stdin \
             (no terminal here: /dev/tty: {e})"
        ))
        .into()),
    }
}

fn read_password(args: &UserArgs) -> anyhow::Result<Password> {
    let raw = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        let first = rpassword::prompt_password("password: ")?;
        if rpassword::prompt_password("again: ")? != first {
            bail!("passwords differ");
        }
        first
    };
    Ok(Password::parse(&raw, &LoginSettings::default().policy)?)
}
