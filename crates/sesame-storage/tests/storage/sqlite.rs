//! The embedded store's answers that the login flow relies on beyond the
//! API tests: what counts as a password change for a login in flight.

use chrono::Utc;
use sesame_domain::{NewUser, StoreError, Username};
use sesame_testkit::Backend;

#[tokio::test]
async fn a_password_change_not_a_rehash_outdates_a_login_in_flight() {
    let db = Backend::Sqlite.database().await;
    let users = db.stores().await.users;
    let name = Username::parse("erin").unwrap();
    users
        .create(NewUser {
            username: name.clone(),
            password_hash: "$argon2id$a".into(),
            created_at: Utc::now(),
        })
        .await
        .unwrap();
    let (read, _) = users.find_for_login(&name).await.unwrap();
    let read = read.unwrap();
    assert!(users.password_unchanged(&read).await.unwrap());

    users
        .upgrade_hash(read.id, "$argon2id$a", "$argon2id$a2")
        .await
        .unwrap();
    assert!(
        users.password_unchanged(&read).await.unwrap(),
        "a rehash is not a password change"
    );

    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    users
        .set_password_hash(read.id, None, "$argon2id$b", Utc::now())
        .await
        .unwrap();
    assert!(!users.password_unchanged(&read).await.unwrap());
    let (again, _) = users.find_for_login(&name).await.unwrap();
    let again = again.unwrap();
    assert!(users.password_unchanged(&again).await.unwrap());

    // A change proved against a hash that has changed since (a concurrent
    // change, or one a frozen instance finishes late) changes nothing.
    assert!(matches!(
        users
            .set_password_hash(read.id, Some("$argon2id$a2"), "$argon2id$late", Utc::now())
            .await,
        Err(StoreError::NotFound)
    ));
    users
        .set_password_hash(read.id, Some("$argon2id$b"), "$argon2id$c", Utc::now())
        .await
        .unwrap();
    let (now, _) = users.find_for_login(&name).await.unwrap();
    assert_eq!(&*now.unwrap().password_hash, "$argon2id$c");

    users.remove(&name).await.unwrap();
    assert!(
        !users.password_unchanged(&read).await.unwrap(),
        "a removed user's password has changed"
    );
}
