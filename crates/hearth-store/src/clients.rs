//! The authorization server's registered clients (`hearth_auth::client`)
//! and the client assertions already used, kept in the database so any
//! node serves them.

use diesel::prelude::*;
use diesel::sql_types::Text;
use hearth_auth::authorize::{CodeUse, RefreshUse};
use hearth_auth::client::Client;

use crate::statement::{Bind, Sql};
use crate::{Result, Store, StoreError};

#[derive(QueryableByName)]
struct DocumentRow {
    #[diesel(sql_type = Text)]
    document: String,
}

fn read(row: DocumentRow) -> Result<Client> {
    serde_json::from_str(&row.document)
        .map_err(|e| StoreError::Database(format!("a stored client does not read back: {e}")))
}

impl Store {
    /// Registers `client`; `Ok(false)` when its id is taken.
    pub fn add_client(&self, client: &Client) -> Result<bool> {
        let document = serde_json::to_string(client).expect("a client serializes");
        let (id, created_at) = (client.id.clone(), client.created_at);
        self.write(move |tx| -> Result<bool> {
            let added = Sql::with_binds(
                "INSERT INTO oauth_clients (client_id, document, created_at) VALUES (?, ?, ?) \
                 ON CONFLICT (client_id) DO NOTHING",
                vec![Bind::Text(id), Bind::Text(document), Bind::Int(created_at)],
            )
            .execute(tx.conn)?;
            Ok(added == 1)
        })
    }

    /// The client registered as `id`.
    pub fn client(&self, id: &str) -> Result<Option<Client>> {
        let id = id.to_owned();
        let rows: Vec<DocumentRow> = self.read_with(|tx| {
            Ok(Sql::with_binds(
                "SELECT document FROM oauth_clients WHERE client_id = ?",
                vec![Bind::Text(id)],
            )
            .load(tx.conn)?)
        })?;
        rows.into_iter().next().map(read).transpose()
    }

    /// Every registered client, by id.
    pub fn clients(&self) -> Result<Vec<Client>> {
        let rows: Vec<DocumentRow> = self.read_with(|tx| {
            Ok(Sql::new("SELECT document FROM oauth_clients ORDER BY client_id").load(tx.conn)?)
        })?;
        rows.into_iter().map(read).collect()
    }

    /// Removes the client `id`; whether there was one. Its tokens live on
    /// until they expire (revoke them to stop them sooner).
    pub fn remove_client(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        self.write(move |tx| -> Result<bool> {
            Sql::with_binds(
                "DELETE FROM client_assertions WHERE client_id = ?",
                vec![Bind::Text(id.clone())],
            )
            .execute(tx.conn)?;
            let removed = Sql::with_binds(
                "DELETE FROM oauth_clients WHERE client_id = ?",
                vec![Bind::Text(id)],
            )
            .execute(tx.conn)?;
            Ok(removed == 1)
        })
    }

    /// Records that `client_id` used the assertion `jti`, which expires at
    /// `expires_at` (seconds since the epoch): `Ok(false)` when it was used
    /// before. Expired assertions are forgotten as new ones come.
    pub fn use_assertion(&self, client_id: &str, jti: &str, expires_at: i64) -> Result<bool> {
        let (client_id, jti) = (client_id.to_owned(), jti.to_owned());
        let now = hearth_model::datetime::now_ms() / 1000;
        self.write(move |tx| -> Result<bool> {
            // Past their expiry (with a minute for clocks) they are
            // refused as expired anyway.
            Sql::with_binds(
                "DELETE FROM client_assertions WHERE expires_at < ?",
                vec![Bind::Int(now - 60)],
            )
            .execute(tx.conn)?;
            let fresh = Sql::with_binds(
                "INSERT INTO client_assertions (client_id, jti, expires_at) VALUES (?, ?, ?) \
                 ON CONFLICT (client_id, jti) DO NOTHING",
                vec![
                    Bind::Text(client_id),
                    Bind::Text(jti),
                    Bind::Int(expires_at),
                ],
            )
            .execute(tx.conn)?;
            Ok(fresh == 1)
        })
    }
}

/// The authorization server keeps its clients, used assertions and
/// revocations here.
impl hearth_auth::oauth::Registry for Store {
    fn client(&self, id: &str) -> std::result::Result<Option<Client>, String> {
        Store::client(self, id).map_err(|e| e.to_string())
    }

    fn use_assertion(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: i64,
    ) -> std::result::Result<bool, String> {
        Store::use_assertion(self, client_id, jti, expires_at).map_err(|e| e.to_string())
    }

    fn check_filter(
        &self,
        scope: &hearth_auth::scope::ResourceScope,
    ) -> std::result::Result<(), String> {
        match &scope.resource_type {
            Some(t) => crate::check_filter(t, &scope.filter, &self.custom_params()),
            None => Err("a granular scope names one resource type".into()),
        }
    }

    fn revoke(&self, id: &str, expires_at: i64) -> std::result::Result<(), String> {
        self.revoke_token(id, expires_at).map_err(|e| e.to_string())
    }

    fn user(&self, username: &str) -> std::result::Result<Option<hearth_auth::user::User>, String> {
        Store::user(self, username).map_err(|e| e.to_string())
    }

    fn save_code(
        &self,
        code_hash: &str,
        approval: &str,
        expires_at: i64,
    ) -> std::result::Result<(), String> {
        let (hash, document) = (code_hash.to_owned(), approval.to_owned());
        let now = hearth_model::datetime::now_ms() / 1000;
        self.write(move |tx| -> Result<()> {
            // Codes live a minute; a day later nobody asks about them.
            Sql::with_binds(
                "DELETE FROM oauth_codes WHERE expires_at < ?",
                vec![Bind::Int(now - 86_400)],
            )
            .execute(tx.conn)?;
            Sql::with_binds(
                "INSERT INTO oauth_codes (code_hash, document, expires_at) VALUES (?, ?, ?)",
                vec![
                    Bind::Text(hash),
                    Bind::Text(document),
                    Bind::Int(expires_at),
                ],
            )
            .execute(tx.conn)?;
            Ok(())
        })
        .map_err(|e| e.to_string())
    }

    fn take_code(&self, code_hash: &str, now: i64) -> std::result::Result<CodeUse, String> {
        let hash = code_hash.to_owned();
        self.write(move |tx| -> Result<CodeUse> {
            // Only one exchange can change the row: the first.
            let taken = Sql::with_binds(
                "UPDATE oauth_codes SET used_at = ? WHERE code_hash = ? AND used_at IS NULL AND expires_at >= ?",
                vec![Bind::Int(now), Bind::Text(hash.clone()), Bind::Int(now)],
            )
            .execute(tx.conn)?;
            let rows: Vec<CodeRow> = Sql::with_binds(
                "SELECT document, issued, used_at FROM oauth_codes WHERE code_hash = ?",
                vec![Bind::Text(hash)],
            )
            .load(tx.conn)?;
            Ok(match (taken, rows.into_iter().next()) {
                (1, Some(row)) => CodeUse::Fresh(row.document),
                (_, Some(row)) if row.used_at.is_some() => CodeUse::Reused(row.issued),
                _ => CodeUse::Unknown,
            })
        })
        .map_err(|e| e.to_string())
    }

    fn code_issued(&self, code_hash: &str, issued: &str) -> std::result::Result<(), String> {
        let (hash, issued) = (code_hash.to_owned(), issued.to_owned());
        self.write(move |tx| -> Result<()> {
            Sql::with_binds(
                "UPDATE oauth_codes SET issued = ? WHERE code_hash = ?",
                vec![Bind::Text(issued), Bind::Text(hash)],
            )
            .execute(tx.conn)?;
            Ok(())
        })
        .map_err(|e| e.to_string())
    }

    fn save_refresh(
        &self,
        token_hash: &str,
        family: &str,
        approval: &str,
        expires_at: i64,
    ) -> std::result::Result<(), String> {
        let (hash, family, document) = (
            token_hash.to_owned(),
            family.to_owned(),
            approval.to_owned(),
        );
        let now = hearth_model::datetime::now_ms() / 1000;
        self.write(move |tx| -> Result<()> {
            Sql::with_binds("DELETE FROM oauth_refresh_tokens WHERE expires_at < ?", vec![Bind::Int(now)])
                .execute(tx.conn)?;
            Sql::with_binds(
                "INSERT INTO oauth_refresh_tokens (token_hash, family, document, expires_at) VALUES (?, ?, ?, ?)",
                vec![Bind::Text(hash), Bind::Text(family), Bind::Text(document), Bind::Int(expires_at)],
            )
            .execute(tx.conn)?;
            Ok(())
        })
        .map_err(|e| e.to_string())
    }

    fn use_refresh(&self, token_hash: &str, now: i64) -> std::result::Result<RefreshUse, String> {
        let hash = token_hash.to_owned();
        self.write(move |tx| -> Result<RefreshUse> {
            let rotated = Sql::with_binds(
                "UPDATE oauth_refresh_tokens SET rotated_at = ? WHERE token_hash = ? \
                 AND rotated_at IS NULL AND revoked_at IS NULL AND expires_at >= ?",
                vec![Bind::Int(now), Bind::Text(hash.clone()), Bind::Int(now)],
            )
            .execute(tx.conn)?;
            let rows: Vec<RefreshRow> = Sql::with_binds(
                "SELECT family, document, expires_at FROM oauth_refresh_tokens WHERE token_hash = ?",
                vec![Bind::Text(hash)],
            )
            .load(tx.conn)?;
            Ok(match (rotated, rows.into_iter().next()) {
                (1, Some(row)) => RefreshUse::Fresh { family: row.family, approval: row.document },
                (_, Some(row)) if row.expires_at >= now => RefreshUse::Stale { family: row.family },
                _ => RefreshUse::Unknown,
            })
        })
        .map_err(|e| e.to_string())
    }

    fn refresh_family(
        &self,
        token_hash: &str,
        now: i64,
    ) -> std::result::Result<Option<(String, String)>, String> {
        let hash = token_hash.to_owned();
        let rows: Vec<RefreshRow> = self
            .read_with(|tx| {
                Ok(Sql::with_binds(
                    "SELECT family, document, expires_at FROM oauth_refresh_tokens WHERE token_hash = ? \
                     AND rotated_at IS NULL AND revoked_at IS NULL AND expires_at >= ?",
                    vec![Bind::Text(hash), Bind::Int(now)],
                )
                .load(tx.conn)?)
            })
            .map_err(|e| e.to_string())?;
        Ok(rows.into_iter().next().map(|r| (r.family, r.document)))
    }

    fn save_launch(
        &self,
        launch_hash: &str,
        client_id: &str,
        context: &str,
        expires_at: i64,
    ) -> std::result::Result<(), String> {
        let (hash, client, document) = (
            launch_hash.to_owned(),
            client_id.to_owned(),
            context.to_owned(),
        );
        let now = hearth_model::datetime::now_ms() / 1000;
        self.write(move |tx| -> Result<()> {
            Sql::with_binds("DELETE FROM oauth_launches WHERE expires_at < ?", vec![Bind::Int(now - 86_400)])
                .execute(tx.conn)?;
            Sql::with_binds(
                "INSERT INTO oauth_launches (launch_hash, client_id, document, expires_at) VALUES (?, ?, ?, ?)",
                vec![Bind::Text(hash), Bind::Text(client), Bind::Text(document), Bind::Int(expires_at)],
            )
            .execute(tx.conn)?;
            Ok(())
        })
        .map_err(|e| e.to_string())
    }

    fn take_launch(
        &self,
        launch_hash: &str,
        client_id: &str,
        now: i64,
    ) -> std::result::Result<Option<String>, String> {
        let (hash, client) = (launch_hash.to_owned(), client_id.to_owned());
        self.write(move |tx| -> Result<Option<String>> {
            let taken = Sql::with_binds(
                "UPDATE oauth_launches SET used_at = ? WHERE launch_hash = ? AND client_id = ? \
                 AND used_at IS NULL AND expires_at >= ?",
                vec![
                    Bind::Int(now),
                    Bind::Text(hash.clone()),
                    Bind::Text(client),
                    Bind::Int(now),
                ],
            )
            .execute(tx.conn)?;
            if taken != 1 {
                return Ok(None);
            }
            let rows: Vec<ContextRow> = Sql::with_binds(
                "SELECT document FROM oauth_launches WHERE launch_hash = ?",
                vec![Bind::Text(hash)],
            )
            .load(tx.conn)?;
            Ok(rows.into_iter().next().map(|r| r.document))
        })
        .map_err(|e| e.to_string())
    }

    fn id_token_key(&self) -> std::result::Result<hearth_auth::keys::IdTokenKey, String> {
        self.make_id_token_key().map_err(|e| e.to_string())
    }

    fn revoke_family(&self, family: &str) -> std::result::Result<(), String> {
        let family = family.to_owned();
        let now = hearth_model::datetime::now_ms() / 1000;
        self.write(move |tx| -> Result<()> {
            Sql::with_binds(
                "UPDATE oauth_refresh_tokens SET revoked_at = ? WHERE family = ? AND revoked_at IS NULL",
                vec![Bind::Int(now), Bind::Text(family)],
            )
            .execute(tx.conn)?;
            Ok(())
        })
        .map_err(|e| e.to_string())
    }
}

#[derive(QueryableByName)]
struct ContextRow {
    #[diesel(sql_type = Text)]
    document: String,
}

#[derive(QueryableByName)]
struct CodeRow {
    #[diesel(sql_type = Text)]
    document: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    issued: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    used_at: Option<i64>,
}

#[derive(QueryableByName)]
struct RefreshRow {
    #[diesel(sql_type = Text)]
    family: String,
    #[diesel(sql_type = Text)]
    document: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    expires_at: i64,
}

#[cfg(test)]
mod tests {
    use hearth_auth::client::{Client, Credentials};

    use crate::testing::TestDatabase;
    use crate::{Store, StoreOptions};

    crate::both_backends! {
        fn clients_are_registered_once_and_assertions_used_once() {
            let db = TestDatabase::new();
            let store = Store::open(&db.database, &StoreOptions::default()).unwrap();
            let client = Client {
                id: "bulk".into(),
                name: "Bulk exporter".into(),
                redirect_uris: Vec::new(),
                scope: "system/*.rs".into(),
                launch_uri: None,
                credentials: Credentials::JwksUrl { url: "https://keys.example/jwks".into() },
                launches: false,
                created_at: 7,
            };
            assert!(store.add_client(&client).unwrap());
            assert!(!store.add_client(&client).unwrap(), "the id is taken");
            assert_eq!(store.client("bulk").unwrap(), Some(client.clone()));
            assert_eq!(store.client("other").unwrap(), None);
            assert_eq!(store.clients().unwrap(), vec![client]);
            let later = hearth_model::datetime::now_ms() / 1000 + 300;
            assert!(store.use_assertion("bulk", "j1", later).unwrap());
            assert!(!store.use_assertion("bulk", "j1", later).unwrap(), "a replay");
            assert!(store.use_assertion("other", "j1", later).unwrap(), "per client");
            assert!(store.remove_client("bulk").unwrap());
            assert!(!store.remove_client("bulk").unwrap());
            assert_eq!(store.client("bulk").unwrap(), None);
        }
    }
}
