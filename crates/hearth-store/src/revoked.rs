//! Access tokens revoked before they expire, kept in the database so that
//! every node refuses them (`hearth_auth::token::revocation_of` names them).

use diesel::prelude::*;
use diesel::sql_types::Text;

use crate::statement::{Bind, Sql};
use crate::{Result, Store};

/// How long after its expiry a revoked token stays listed: verification
/// allows some leeway for clocks (30 s).
const AFTER_EXPIRY_SECS: i64 = 60;

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = Text)]
    token_id: String,
}

impl Store {
    /// Revokes the token named `token_id` until `expires_at` (seconds
    /// since the epoch), when it would stop working anyway; tokens revoked
    /// earlier and expired since are dropped from the list.
    pub fn revoke_token(&self, token_id: &str, expires_at: i64) -> Result<()> {
        let (token_id, now) = (token_id.to_owned(), hearth_model::datetime::now_ms() / 1000);
        self.write(move |tx| -> Result<()> {
            Sql::with_binds(
                "DELETE FROM revoked_tokens WHERE expires_at < ?",
                vec![Bind::Int(now - AFTER_EXPIRY_SECS)],
            )
            .execute(tx.conn)?;
            Sql::with_binds(
                "INSERT INTO revoked_tokens (token_id, expires_at, revoked_at) VALUES (?, ?, ?) \
                 ON CONFLICT (token_id) DO NOTHING",
                vec![Bind::Text(token_id), Bind::Int(expires_at), Bind::Int(now)],
            )
            .execute(tx.conn)?;
            Ok(())
        })
    }

    /// The tokens revoked that have not expired yet (give or take a minute).
    pub fn revoked_tokens(&self) -> Result<Vec<String>> {
        let since = hearth_model::datetime::now_ms() / 1000 - AFTER_EXPIRY_SECS;
        let rows: Vec<IdRow> = self.read_with(|tx| {
            Ok(Sql::with_binds(
                "SELECT token_id FROM revoked_tokens WHERE expires_at >= ?",
                vec![Bind::Int(since)],
            )
            .load(tx.conn)?)
        })?;
        Ok(rows.into_iter().map(|r| r.token_id).collect())
    }
}
