//! `hearth user`: the people who sign in to Hearth's authorization server,
//! each a FHIR Patient or Practitioner (kept in the database: every node
//! knows them at once).

use std::io::Read;

use clap::{Args, Subcommand};
use hearth_auth::client::hash_secret;
use hearth_auth::user::{self, User, MIN_PASSWORD_CHARS};
use hearth_store::Store;

use crate::config::{Config, ServeArgs};

#[derive(Debug, Args)]
pub struct UserArgs {
    #[command(subcommand)]
    pub command: UserCommand,
    #[command(flatten)]
    pub settings: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user, the password read from standard input (at least 12
    /// characters; kept as an Argon2id hash).
    Add {
        username: String,
        /// Who the user is: Patient/<id> or Practitioner/<id>.
        #[arg(long = "fhir-user")]
        fhir_user: String,
        #[arg(long = "password-stdin", required = true)]
        password_stdin: bool,
    },
    /// List the users: username and FHIR user.
    List,
    /// Remove a user.
    Remove { username: String },
    /// Set a user's password, read from standard input.
    Passwd {
        username: String,
        #[arg(long = "password-stdin", required = true)]
        password_stdin: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("{0}")]
    Invalid(String),
    #[error("cannot open the database: {0}")]
    Store(#[from] hearth_store::StoreError),
}

/// Runs the command; answers what to print. `stdin` gives the password.
pub fn run(args: &UserArgs, config: &Config, stdin: &mut dyn Read) -> Result<String, UserError> {
    let store = Store::open(&config.database(), &config.store)?;
    match &args.command {
        UserCommand::Add {
            username,
            fhir_user,
            ..
        } => {
            if !user::valid_username(username) {
                return Err(UserError::Invalid(
                    "a username is 1 to 128 characters without spaces".into(),
                ));
            }
            if !user::valid_fhir_user(fhir_user) {
                return Err(UserError::Invalid(format!(
                    "--fhir-user '{fhir_user}' must be Patient/<id> or Practitioner/<id>"
                )));
            }
            let added = store.add_user(&User {
                username: username.clone(),
                fhir_user: fhir_user.clone(),
                password_hash: hash_secret(&password(stdin)?),
                created_at: hearth_model::datetime::now_ms(),
            })?;
            if !added {
                return Err(UserError::Invalid(format!(
                    "user {username} exists already"
                )));
            }
            Ok(format!("added {username} ({fhir_user})\n"))
        }
        UserCommand::List => Ok(store
            .users()?
            .iter()
            .map(|u| format!("{}\t{}\n", u.username, u.fhir_user))
            .collect()),
        UserCommand::Remove { username } => match store.remove_user(username)? {
            true => Ok(format!("removed {username}\n")),
            false => Err(UserError::Invalid(format!("no user {username}"))),
        },
        UserCommand::Passwd { username, .. } => {
            let hash = hash_secret(&password(stdin)?);
            match store.set_password(username, &hash)? {
                true => Ok(format!("changed the password of {username}\n")),
                false => Err(UserError::Invalid(format!("no user {username}"))),
            }
        }
    }
}

/// A password from the first line of `stdin`.
fn password(stdin: &mut dyn Read) -> Result<String, UserError> {
    let mut text = String::new();
    stdin
        .take(4096)
        .read_to_string(&mut text)
        .map_err(|e| UserError::Invalid(format!("cannot read the password: {e}")))?;
    let password = text.lines().next().unwrap_or_default().to_owned();
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(UserError::Invalid(format!(
            "the password must be at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    Ok(password)
}
