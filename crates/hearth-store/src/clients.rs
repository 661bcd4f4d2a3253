//! The authorization server's registered clients (`hearth_auth::client`)
//! and the client assertions already used, kept in the database so any
//! node serves them.

use diesel::prelude::*;
use diesel::sql_types::Text;
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
