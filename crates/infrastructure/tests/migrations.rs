//! The schema's migrations: up, down to zero and up again, on both engines.

use orderly_infrastructure::{Database, on_both_engines};

async fn migrations_round_trip_up_down_to_zero_and_up_again(db: &Database) {
    let applied =
        |status: Vec<(String, bool)>| status.iter().filter(|(_, applied)| *applied).count();
    let all = db.migration_status().await.expect("status").len();
    assert!(all >= 5, "expected at least five migrations, found {all}");
    assert_eq!(applied(db.migration_status().await.expect("status")), all);

    db.migrate_down(Some(1)).await.expect("one step down");
    assert_eq!(applied(db.migration_status().await.expect("status")), all - 1);

    db.migrate_down(None).await.expect("down to zero");
    assert_eq!(applied(db.migration_status().await.expect("status")), 0);

    db.migrate_up(None).await.expect("up again");
    assert_eq!(applied(db.migration_status().await.expect("status")), all);

    db.migrate_fresh().await.expect("fresh");
    assert_eq!(applied(db.migration_status().await.expect("status")), all);
}

on_both_engines!(migrations_round_trip_up_down_to_zero_and_up_again);
