//! The people who sign in to the authorization server
//! (`hearth_auth::user`), kept in the database so every node knows them.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use hearth_auth::user::User;

use crate::statement::{Bind, Sql};
use crate::{Result, Store};

#[derive(QueryableByName)]
struct UserRow {
    #[diesel(sql_type = Text)]
    username: String,
    #[diesel(sql_type = Text)]
    fhir_user: String,
    #[diesel(sql_type = Text)]
    password_hash: String,
    #[diesel(sql_type = BigInt)]
    created_at: i64,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> User {
        User {
            username: r.username,
            fhir_user: r.fhir_user,
            password_hash: r.password_hash,
            created_at: r.created_at,
        }
    }
}

const COLUMNS: &str = "username, fhir_user, password_hash, created_at";

impl Store {
    /// Adds `user`; `Ok(false)` when the username is taken.
    pub fn add_user(&self, user: &User) -> Result<bool> {
        let user = user.clone();
        self.write(move |tx| -> Result<bool> {
            Ok(Sql::with_binds(
                &format!(
                    "INSERT INTO oauth_users ({COLUMNS}) VALUES (?, ?, ?, ?) \
                     ON CONFLICT (username) DO NOTHING"
                ),
                vec![
                    Bind::Text(user.username),
                    Bind::Text(user.fhir_user),
                    Bind::Text(user.password_hash),
                    Bind::Int(user.created_at),
                ],
            )
            .execute(tx.conn)?
                == 1)
        })
    }

    pub fn user(&self, username: &str) -> Result<Option<User>> {
        let name = username.to_owned();
        let rows: Vec<UserRow> = self.read_with(|tx| {
            Ok(Sql::with_binds(
                &format!("SELECT {COLUMNS} FROM oauth_users WHERE username = ?"),
                vec![Bind::Text(name)],
            )
            .load(tx.conn)?)
        })?;
        Ok(rows.into_iter().next().map(User::from))
    }

    /// Every user, by username.
    pub fn users(&self) -> Result<Vec<User>> {
        let rows: Vec<UserRow> = self.read_with(|tx| {
            Ok(Sql::new(&format!(
                "SELECT {COLUMNS} FROM oauth_users ORDER BY username"
            ))
            .load(tx.conn)?)
        })?;
        Ok(rows.into_iter().map(User::from).collect())
    }

    /// Removes a user; whether there was one.
    pub fn remove_user(&self, username: &str) -> Result<bool> {
        let name = username.to_owned();
        self.write(move |tx| -> Result<bool> {
            Ok(Sql::with_binds(
                "DELETE FROM oauth_users WHERE username = ?",
                vec![Bind::Text(name)],
            )
            .execute(tx.conn)?
                == 1)
        })
    }

    /// Replaces a user's password hash; whether there was such a user.
    pub fn set_password(&self, username: &str, password_hash: &str) -> Result<bool> {
        let (name, hash) = (username.to_owned(), password_hash.to_owned());
        self.write(move |tx| -> Result<bool> {
            Ok(Sql::with_binds(
                "UPDATE oauth_users SET password_hash = ? WHERE username = ?",
                vec![Bind::Text(hash), Bind::Text(name)],
            )
            .execute(tx.conn)?
                == 1)
        })
    }
}

#[cfg(test)]
mod tests {
    use hearth_auth::user::User;

    use crate::testing::TestDatabase;
    use crate::{Store, StoreOptions};

    crate::both_backends! {
        fn users_are_added_once_changed_and_removed() {
            let db = TestDatabase::new();
            let store = Store::open(&db.database, &StoreOptions::default()).unwrap();
            let alice = User {
                username: "alice".into(),
                fhir_user: "Patient/a1".into(),
                password_hash: "h1".into(),
                created_at: 1,
            };
            assert!(store.add_user(&alice).unwrap());
            assert!(!store.add_user(&alice).unwrap());
            assert_eq!(store.user("alice").unwrap(), Some(alice.clone()));
            assert!(store.set_password("alice", "h2").unwrap());
            assert_eq!(store.user("alice").unwrap().unwrap().password_hash, "h2");
            assert!(!store.set_password("bob", "h2").unwrap());
            assert_eq!(store.users().unwrap().len(), 1);
            assert!(store.remove_user("alice").unwrap());
            assert_eq!(store.user("alice").unwrap(), None);
        }
    }
}
