//! The Argon2id flag group: `--hash-m-cost`, `--hash-t-cost` and
//! `--hash-p-cost`, each with its `SESAME_HASH_*` variable, for every command
//! that hashes as the server does (`sesame serve`, `user`, `load seed`,
//! `plan`). Declared once, so that the flags, their defaults (the OWASP
//! minimum, [`HashParams::default`]) and their variables cannot drift apart
//! between commands: one `SESAME_HASH_M_COST` in the environment sets them
//! all.
//!
//! ```
//! #[derive(clap::Parser)]
//! struct Seed {
//!     #[command(flatten)]
//!     hash: sesame_toolkit::argon2_flags::Argon2Args,
//! }
//! ```

use sesame_domain::HashParams;

/// The Argon2id cost flags; [`Argon2Args::params`] is what they ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args)]
pub struct Argon2Args {
    /// Argon2id memory cost in KiB (OWASP minimum: 19456). Give `load seed`
    /// and `plan` the server's, or seeded users rehash at their first login
    /// and the plan sizes another hash.
    #[arg(long, env = "SESAME_HASH_M_COST", default_value_t = 19_456)]
    pub hash_m_cost: u32,
    /// Argon2id passes.
    #[arg(long, env = "SESAME_HASH_T_COST", default_value_t = 2)]
    pub hash_t_cost: u32,
    /// Argon2id lanes.
    #[arg(long, env = "SESAME_HASH_P_COST", default_value_t = 1)]
    pub hash_p_cost: u32,
}

impl Argon2Args {
    pub fn params(&self) -> HashParams {
        HashParams {
            m_cost: self.hash_m_cost,
            t_cost: self.hash_t_cost,
            p_cost: self.hash_p_cost,
        }
    }
}

impl From<HashParams> for Argon2Args {
    fn from(p: HashParams) -> Self {
        Self {
            hash_m_cost: p.m_cost,
            hash_t_cost: p.t_cost,
            hash_p_cost: p.p_cost,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        hash: Argon2Args,
    }

    #[test]
    fn the_defaults_are_the_domains() {
        // Not parsed from the environment: a SESAME_HASH_* set where the
        // tests run would change them.
        let cmd = <Cli as clap::CommandFactory>::command();
        let default = |id: &str| {
            let arg = cmd.get_arguments().find(|a| a.get_id() == id).unwrap();
            arg.get_default_values()[0]
                .to_str()
                .unwrap()
                .parse::<u32>()
                .unwrap()
        };
        let from_flags = Argon2Args {
            hash_m_cost: default("hash_m_cost"),
            hash_t_cost: default("hash_t_cost"),
            hash_p_cost: default("hash_p_cost"),
        };
        assert_eq!(from_flags.params(), HashParams::default());
    }

    #[test]
    fn flags_and_variables() {
        let cli = Cli::try_parse_from([
            "x",
            "--hash-m-cost",
            "65536",
            "--hash-t-cost",
            "3",
            "--hash-p-cost",
            "4",
        ])
        .unwrap();
        assert_eq!(
            cli.hash.params(),
            HashParams {
                m_cost: 65_536,
                t_cost: 3,
                p_cost: 4
            }
        );
        assert_eq!(Argon2Args::from(cli.hash.params()), cli.hash);
        let cmd = <Cli as clap::CommandFactory>::command();
        let vars: Vec<_> = cmd
            .get_arguments()
            .filter_map(|a| a.get_env()?.to_str())
            .collect();
        assert_eq!(
            vars,
            [
                "SESAME_HASH_M_COST",
                "SESAME_HASH_T_COST",
                "SESAME_HASH_P_COST"
            ]
        );
    }
}
