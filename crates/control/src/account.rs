//! The account and its root credentials. The first start creates a 12-digit account id and a
//! root access key in the store; both can be seeded (tests and fixed set-ups need that).

use corral_store::{AccessKey, Store};
use corral_types::{Error, Result};
use rand::Rng;

pub const ACCOUNT_ID_KEY: &str = "account_id";

/// Values given by flags or environment that override what bootstrap would generate.
#[derive(Debug, Clone, Default)]
pub struct Seed {
    pub account_id: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

/// Makes sure the store has an account id and root credentials; returns them.
pub fn bootstrap(store: &Store, seed: &Seed) -> Result<(String, AccessKey)> {
    if let Some(a) = &seed.account_id {
        if a.len() != 12 || !a.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::internal(format!("seeded account id {a:?} is not 12 digits")));
        }
    }
    if seed.access_key_id.is_some() != seed.secret_access_key.is_some() {
        return Err(Error::internal("seed both the access key id and the secret access key, or neither"));
    }
    store.transaction(|tx| {
        let account_id = match (&seed.account_id, tx.meta_get(ACCOUNT_ID_KEY)?) {
            (Some(a), _) => a.clone(),
            (None, Some(a)) => a,
            (None, None) => {
                let mut rng = rand::thread_rng();
                let first = rng.gen_range(1..10u8);
                let rest: String = (0..11).map(|_| char::from(b'0' + rng.gen_range(0..10u8))).collect();
                format!("{first}{rest}")
            }
        };
        tx.meta_set(ACCOUNT_ID_KEY, &account_id)?;
        let key = match (&seed.access_key_id, &seed.secret_access_key) {
            (Some(id), Some(secret)) => {
                let k = AccessKey {
                    access_key_id: id.clone(),
                    secret_access_key: secret.clone(),
                    user_name: "root".into(),
                    created_at: crate::now_iso(),
                };
                tx.access_key_insert(&k)?;
                k
            }
            _ => match tx.access_key_first()? {
                Some(k) => k,
                None => {
                    let k = AccessKey {
                        access_key_id: random_from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16, "AKIA"),
                        secret_access_key: random_from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", 40, ""),
                        user_name: "root".into(),
                        created_at: crate::now_iso(),
                    };
                    tx.access_key_insert(&k)?;
                    k
                }
            },
        };
        Ok::<_, Error>((account_id, key))
    })
}

/// A new access key of the account (`corral credentials create`).
pub fn access_key_create(store: &Store) -> Result<AccessKey> {
    let k = AccessKey {
        access_key_id: random_from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16, "AKIA"),
        secret_access_key: random_from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", 40, ""),
        user_name: "root".into(),
        created_at: crate::now_iso(),
    };
    store.transaction(|tx| Ok::<_, Error>(tx.access_key_insert(&k)?))?;
    Ok(k)
}

/// Revokes an access key: every request signed with it is refused from then on (the API
/// reads keys from the store on every request). The last key is kept, or nobody could call
/// the API again.
pub fn access_key_revoke(store: &Store, id: &str) -> Result<()> {
    store.transaction(|tx| {
        let keys = tx.access_key_list()?;
        if !keys.iter().any(|k| k.access_key_id == id) {
            return Err(Error::internal(format!("no access key {id}")));
        }
        if keys.len() == 1 {
            return Err(Error::internal(format!("{id} is the last access key: create another first")));
        }
        tx.access_key_delete(id)?;
        Ok(())
    })
}

/// Gives another region's store the account of the home region (credentials stay in the
/// home region's store).
pub fn region_bootstrap(store: &Store, account_id: &str) -> Result<()> {
    store.transaction(|tx| Ok::<_, Error>(tx.meta_set(ACCOUNT_ID_KEY, account_id)?))
}

fn random_from(alphabet: &[u8], n: usize, prefix: &str) -> String {
    let mut rng = rand::thread_rng();
    let mut s = prefix.to_string();
    s.extend((0..n).map(|_| char::from(alphabet[rng.gen_range(0..alphabet.len())])));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_stable() {
        let store = Store::open_in_memory().unwrap();
        let (a1, k1) = bootstrap(&store, &Seed::default()).unwrap();
        assert_eq!(a1.len(), 12);
        assert!(k1.access_key_id.starts_with("AKIA") && k1.access_key_id.len() == 20);
        assert_eq!(k1.secret_access_key.len(), 40);
        let (a2, k2) = bootstrap(&store, &Seed::default()).unwrap();
        assert_eq!((a1, k1), (a2, k2));
    }

    #[test]
    fn keys_are_created_and_revoked_but_never_the_last() {
        let store = Store::open_in_memory().unwrap();
        let (_, root) = bootstrap(&store, &Seed::default()).unwrap();
        let k = access_key_create(&store).unwrap();
        assert!(k.access_key_id.starts_with("AKIA") && k.secret_access_key.len() == 40);
        assert_ne!(k.access_key_id, root.access_key_id);
        access_key_revoke(&store, &root.access_key_id).unwrap();
        assert_eq!(store.read(|tx| tx.access_key_get(&root.access_key_id)).unwrap(), None);
        assert!(access_key_revoke(&store, &k.access_key_id).is_err(), "the last key stays");
        assert!(access_key_revoke(&store, "AKIANOSUCHKEY").is_err());
    }

    #[test]
    fn seeds_win() {
        let store = Store::open_in_memory().unwrap();
        let seed = Seed {
            account_id: Some("123456789012".into()),
            access_key_id: Some("AKIATESTTESTTESTTEST".into()),
            secret_access_key: Some("secret".into()),
        };
        let (a, k) = bootstrap(&store, &seed).unwrap();
        assert_eq!(a, "123456789012");
        assert_eq!(k.access_key_id, "AKIATESTTESTTESTTEST");
        assert!(bootstrap(&store, &Seed { account_id: Some("12".into()), ..Seed::default() }).is_err());
    }
}
