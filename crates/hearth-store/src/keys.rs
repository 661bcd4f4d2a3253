//! Hearth's token signing keys, kept in the database so every node
//! shares them (`hearth_auth::keys`).

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Binary, Text};
use hearth_auth::keys::IdTokenKey;
use hearth_auth::SigningKey;

use crate::statement::{Bind, Sql};
use crate::{Result, Store, StoreError};

#[derive(QueryableByName)]
struct KeyRow {
    #[diesel(sql_type = Text)]
    kid: String,
    #[diesel(sql_type = Binary)]
    private_key: Vec<u8>,
    #[diesel(sql_type = BigInt)]
    created_at: i64,
}

impl Store {
    /// The signing keys, oldest first; the first start makes one. Nodes
    /// starting together make one between them: the insert is keyed by
    /// nothing but the key, so each reads back whatever is there after
    /// its own transaction.
    pub fn signing_keys(&self) -> Result<Vec<SigningKey>> {
        let keys = self.stored_keys()?;
        if !keys.is_empty() {
            return Ok(keys);
        }
        self.add_signing_key()?;
        self.stored_keys()
    }

    /// Adds a new key, which signs from now on (rotation); the older ones
    /// still verify the tokens they signed.
    pub fn add_signing_key(&self) -> Result<SigningKey> {
        let key = SigningKey::generate(hearth_model::datetime::now_ms());
        let stored = key.clone();
        self.write(move |tx| -> Result<()> {
            // Several nodes starting on an empty database: the first wins.
            tx.lock("signing keys")?;
            Sql::with_binds(
                "INSERT INTO signing_keys (kid, private_key, created_at) VALUES (?, ?, ?)",
                vec![
                    Bind::Text(stored.kid.clone()),
                    Bind::Bytes(stored.pkcs8().to_vec()),
                    Bind::Int(stored.created_at),
                ],
            )
            .execute(tx.conn)?;
            Ok(())
        })?;
        Ok(key)
    }

    /// Removes keys made before `before` (ms since the epoch), keeping the newest:
    /// the tokens they signed no longer verify.
    pub fn retire_signing_keys(&self, before: i64) -> Result<usize> {
        self.write(move |tx| -> Result<usize> {
            Ok(Sql::with_binds(
                "DELETE FROM signing_keys WHERE created_at < ? \
                 AND kid <> (SELECT kid FROM signing_keys ORDER BY created_at DESC, kid LIMIT 1)",
                vec![Bind::Int(before)],
            )
            .execute(tx.conn)?)
        })
    }

    /// The id_token key, if one was made.
    pub fn id_token_key(&self) -> Result<Option<IdTokenKey>> {
        let rows: Vec<KeyRow> = self.read_with(|tx| {
            Ok(Sql::new(
                "SELECT kid, private_key, created_at FROM id_token_keys ORDER BY created_at DESC, kid LIMIT 1",
            )
            .load(tx.conn)?)
        })?;
        rows.into_iter()
            .next()
            .map(|r| {
                IdTokenKey::from_der(Some(r.kid), r.private_key, r.created_at)
                    .map_err(|e| StoreError::Database(e.to_string()))
            })
            .transpose()
    }

    /// The id_token key, made now if there is none yet (nodes asking
    /// together keep the first one stored).
    pub fn make_id_token_key(&self) -> Result<IdTokenKey> {
        if let Some(key) = self.id_token_key()? {
            return Ok(key);
        }
        let key = IdTokenKey::generate(hearth_model::datetime::now_ms());
        let stored = key.clone();
        self.write(move |tx| -> Result<()> {
            tx.lock("signing keys")?;
            let existing: Vec<KeyRow> =
                Sql::new("SELECT kid, private_key, created_at FROM id_token_keys LIMIT 1")
                    .load(tx.conn)?;
            if existing.is_empty() {
                Sql::with_binds(
                    "INSERT INTO id_token_keys (kid, private_key, created_at) VALUES (?, ?, ?)",
                    vec![
                        Bind::Text(stored.kid.clone()),
                        Bind::Bytes(stored.der().to_vec()),
                        Bind::Int(stored.created_at),
                    ],
                )
                .execute(tx.conn)?;
            }
            Ok(())
        })?;
        Ok(self.id_token_key()?.unwrap_or(key))
    }

    fn stored_keys(&self) -> Result<Vec<SigningKey>> {
        let rows: Vec<KeyRow> = self.read_with(|tx| {
            Ok(Sql::new(
                "SELECT kid, private_key, created_at FROM signing_keys ORDER BY created_at, kid",
            )
            .load(tx.conn)?)
        })?;
        rows.into_iter()
            .map(|r| {
                SigningKey::from_pkcs8(Some(r.kid), r.private_key, r.created_at)
                    .map_err(|e| StoreError::Database(e.to_string()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::TestDatabase;
    use crate::{Store, StoreOptions};

    crate::both_backends! {
        fn the_first_start_makes_a_key_and_later_ones_read_it() {
            let db = TestDatabase::new();
            let store = Store::open(&db.database, &StoreOptions::default()).unwrap();
            let first = store.signing_keys().unwrap();
            assert_eq!(first.len(), 1);
            let again = store.signing_keys().unwrap();
            assert_eq!(again[0].kid, first[0].kid);
            let newer = store.add_signing_key().unwrap();
            let both = store.signing_keys().unwrap();
            assert_eq!(both.len(), 2);
            assert!(both.iter().any(|k| k.kid == newer.kid));
            assert_eq!(store.retire_signing_keys(i64::MAX).unwrap(), 1);
            let kept = store.signing_keys().unwrap();
            assert_eq!(kept.len(), 1);
        }
    }
}
