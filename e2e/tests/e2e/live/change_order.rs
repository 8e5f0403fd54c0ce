//! The change path's one rule, checked deterministically against PostgreSQL: a change
//! lands only over an older version of its document, whatever order batches arrive
//! in and however many writers apply them at once (`landing::landing::land_changes`, the
//! transaction the consumers run).

use std::borrow::Cow;

use anyhow::{ensure, Result};
use bson::{doc, Bson, Document};
use common::batch::{Change, ChangeOp, Version};
use e2e::TestEnv;
use landing::changes::ChangeDoc;
use landing::landing::land_changes;
use landing::landing::Landed;
use landing::mapping::{MappingFile, TablePlan};
use landing::reject::Origin;
use landing::session::Session;

fn version(time: u32, increment: u32, ordinal: u32) -> Version {
    Version {
        time,
        increment,
        ordinal,
    }
}

/// One change: what happened to `_id` "x" at `version`, with the document after it.
fn change(op: ChangeOp, version: Version, n: i32) -> ChangeDoc<'static> {
    let doc: Document = if op == ChangeOp::Delete {
        doc! { "_id": "x" }
    } else {
        doc! { "_id": "x", "n": n }
    };
    ChangeDoc {
        change: Change { op, version },
        bytes: Cow::Owned(bson::serialize_to_vec(&doc).unwrap_or_default()),
    }
}

/// Applies one batch under a fresh batch id.
async fn land(
    client: &mut Session,
    plan: &TablePlan,
    id: &str,
    changes: &[ChangeDoc<'_>],
) -> Result<Landed> {
    let origin = Origin {
        run: "order",
        collection: "things",
        batch_id: id,
    };
    Ok(land_changes(client, plan, &origin, 0, changes).await?)
}

/// A session on the test's database with the bookkeeping tables and the default
/// mapping's table `things` made, and the plan that lands into it.
async fn things(env: &TestEnv) -> Result<(Session, TablePlan)> {
    let mut client = Session::new(env.pg().await?);
    let plan = MappingFile::default().plan("things");
    landing::schema::ensure_bookkeeping(&mut client).await?;
    landing::schema::ensure_table(&mut client, &plan, None, None).await?;
    Ok((client, plan))
}

/// Makes PostgreSQL refuse a document whose `n` is 100 or more (a row error, which
/// sends its batch down the careful path).
async fn refuse_n_from_100(client: &tokio_postgres::Client) -> Result<()> {
    client
        .batch_execute(
            "ALTER TABLE things ADD CONSTRAINT small CHECK ((doc #>> '{n,$numberInt}')::int < 100)",
        )
        .await?;
    Ok(())
}

/// The document of "x" in the table: its `n`, or `None` when there is no row.
async fn held(client: &tokio_postgres::Client) -> Result<Option<i64>> {
    let rows = client
        .query("SELECT doc::text FROM things WHERE _id = 'x'", &[])
        .await?;
    ensure!(rows.len() <= 1, "x twice");
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let doc: serde_json::Value = serde_json::from_str(row.try_get(0)?)?;
    let n = Bson::try_from(doc["n"].clone())?;
    Ok(n.as_i32().map(i64::from))
}

#[tokio::test(flavor = "multi_thread")]
async fn newer_versions_win_in_any_order() -> Result<()> {
    let env = TestEnv::new("change_order").await?;
    let (mut client, plan) = things(&env).await?;
    use ChangeOp::*;

    land(
        &mut client,
        &plan,
        "b1",
        &[change(Update, version(10, 1, 0), 1)],
    )
    .await?;
    ensure!(held(&client).await? == Some(1));
    // A delete, then an older update arriving late: the delete stays.
    land(
        &mut client,
        &plan,
        "b2",
        &[change(Delete, version(12, 0, 0), 0)],
    )
    .await?;
    land(
        &mut client,
        &plan,
        "b3",
        &[change(Update, version(11, 0, 0), 2)],
    )
    .await?;
    ensure!(
        held(&client).await?.is_none(),
        "an older update undid a delete"
    );
    // Inserted again after the delete: present.
    land(
        &mut client,
        &plan,
        "b4",
        &[change(Insert, version(13, 0, 0), 3)],
    )
    .await?;
    ensure!(held(&client).await? == Some(3));
    // The first batch again, cut otherwise (another id): changes nothing.
    let again = land(
        &mut client,
        &plan,
        "b1-again",
        &[change(Update, version(10, 1, 0), 1)],
    )
    .await?;
    ensure!(held(&client).await? == Some(3));
    ensure!(
        again
            == Landed::Committed {
                rows: 0,
                rejects: landing::reject::RejectCounts::default(),
                already: 1
            },
        "{again:?}"
    );
    // A batch id seen before is a duplicate, whatever it holds.
    let duplicate = land(
        &mut client,
        &plan,
        "b4",
        &[change(Update, version(99, 0, 0), 9)],
    )
    .await?;
    ensure!(duplicate == Landed::AlreadyClaimed);
    // A transaction's events share a cluster time; their ordinals order them, within
    // a batch and across batches.
    land(
        &mut client,
        &plan,
        "t1",
        &[
            change(Update, version(14, 1, 0), 4),
            change(Update, version(14, 1, 1), 5),
        ],
    )
    .await?;
    ensure!(held(&client).await? == Some(5));
    land(
        &mut client,
        &plan,
        "t2",
        &[change(Update, version(14, 1, 0), 4)],
    )
    .await?;
    ensure!(
        held(&client).await? == Some(5),
        "an earlier event of the transaction won"
    );
    land(
        &mut client,
        &plan,
        "t3",
        &[change(Delete, version(14, 1, 2), 0)],
    )
    .await?;
    ensure!(held(&client).await?.is_none());
    Ok(())
}

/// Two writers racing on one document, many times: an update and a newer delete
/// applied at once in separate transactions always end with no row, and an update and
/// an older delete always end with the update's document.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writers_keep_the_newest_version() -> Result<()> {
    let env = TestEnv::new("change_race").await?;
    let mut setup = env.pg().await?;
    let plan = MappingFile::default().plan("things");
    landing::schema::ensure_bookkeeping(&mut setup).await?;
    landing::schema::ensure_table(&mut setup, &plan, None, None).await?;
    let mut a = Session::new(env.pg().await?);
    let mut b = Session::new(env.pg().await?);
    use ChangeOp::*;
    for round in 0..40u32 {
        let base = 100 + round * 10;
        let (update_at, delete_at, expected) = if round % 2 == 0 {
            (base + 1, base + 2, None)
        } else {
            (base + 2, base + 1, Some(i64::from(round)))
        };
        let update = [change(Update, version(update_at, 0, 0), round as i32)];
        let delete = [change(Delete, version(delete_at, 0, 0), 0)];
        let (ua, ub) = (format!("u{round}"), format!("d{round}"));
        let (left, right) = tokio::join!(
            land(&mut a, &plan, &ua, &update),
            land(&mut b, &plan, &ub, &delete)
        );
        left?;
        right?;
        let now = held(&setup).await?;
        ensure!(
            now == expected,
            "round {round}: {now:?}, expected {expected:?}"
        );
        // Present again for the next round.
        land(
            &mut a,
            &plan,
            &format!("r{round}"),
            &[change(Insert, version(base + 5, 0, 0), -1)],
        )
        .await?;
    }
    Ok(())
}

/// A change of `_id` `id` to `{n}` at `version`, as a batch holds it.
fn update_of(id: &str, time: u32, n: i32) -> ChangeDoc<'static> {
    ChangeDoc {
        change: Change {
            op: ChangeOp::Update,
            version: version(time, 0, 0),
        },
        bytes: Cow::Owned(bson::serialize_to_vec(&doc! { "_id": id, "n": n }).unwrap_or_default()),
    }
}

/// Rows deleted and updated in `things` so far, as PostgreSQL's statistics count them
/// (this session's pending counts flushed first).
async fn deleted_and_updated(client: &tokio_postgres::Client) -> Result<(i64, i64)> {
    client
        .batch_execute("SELECT pg_stat_force_next_flush()")
        .await?;
    let row = client
        .query_one(
            "SELECT n_tup_del, n_tup_upd FROM pg_stat_user_tables WHERE relid = 'things'::regclass",
            &[],
        )
        .await?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}

/// A change that wins replaces its document's row in place (one upsert) only where
/// that means the same as deleting the row and copying the new one: a column the
/// mapping does not write takes its default again, a trigger of the user's sees a
/// delete and an insert, and a row PostgreSQL refuses becomes a reject while the rest
/// of the batch lands.
#[tokio::test(flavor = "multi_thread")]
async fn winners_replace_rows_in_place_only_where_the_table_allows_it() -> Result<()> {
    let env = TestEnv::new("change_upsert").await?;
    let (mut client, plan) = things(&env).await?;

    // A table of the mapping's columns alone: updated in place, nothing deleted.
    land(&mut client, &plan, "u1", &[update_of("x", 10, 1)]).await?;
    let before = deleted_and_updated(&client).await?;
    land(&mut client, &plan, "u2", &[update_of("x", 11, 2)]).await?;
    ensure!(held(&client).await? == Some(2));
    let after = deleted_and_updated(&client).await?;
    ensure!(
        after == (before.0, before.1 + 1),
        "deleted and updated rows went from {before:?} to {after:?}: not one update in place"
    );

    // A generated column is the table's to fill: still in place, and computed anew.
    client
        .batch_execute(
            "ALTER TABLE things ADD COLUMN n_text text
               GENERATED ALWAYS AS (doc #>> '{n,$numberInt}') STORED",
        )
        .await?;
    land(&mut client, &plan, "u2b", &[update_of("x", 12, 22)]).await?;
    let again = deleted_and_updated(&client).await?;
    ensure!(
        again == (after.0, after.1 + 1),
        "with a generated column, deleted and updated rows went from {after:?} to {again:?}"
    );
    let n_text: String = client
        .query_one("SELECT n_text FROM things WHERE _id = 'x'", &[])
        .await?
        .try_get(0)?;
    ensure!(n_text == "22", "the generated column holds {n_text:?}");
    client
        .batch_execute("ALTER TABLE things DROP COLUMN n_text")
        .await?;

    // A deferrable key cannot arbitrate an upsert: deleted and copied.
    client
        .batch_execute(
            "ALTER TABLE things DROP CONSTRAINT things_pkey,
               ADD PRIMARY KEY (_id) DEFERRABLE INITIALLY IMMEDIATE",
        )
        .await?;
    land(&mut client, &plan, "u2c", &[update_of("x", 13, 23)]).await?;
    ensure!(held(&client).await? == Some(23));
    let deferred = deleted_and_updated(&client).await?;
    ensure!(
        deferred.0 == again.0 + 1,
        "with a deferrable key, deleted and updated rows went from {again:?} to {deferred:?}"
    );
    client
        .batch_execute("ALTER TABLE things DROP CONSTRAINT things_pkey, ADD PRIMARY KEY (_id)")
        .await?;

    // A column of the user's: the replaced row takes its default, as a new row does.
    client
        .batch_execute(
            "ALTER TABLE things ADD COLUMN note text DEFAULT 'fresh';
             UPDATE things SET note = 'kept'",
        )
        .await?;
    land(&mut client, &plan, "u3", &[update_of("x", 14, 3)]).await?;
    ensure!(held(&client).await? == Some(3));
    let note: String = client
        .query_one("SELECT note FROM things WHERE _id = 'x'", &[])
        .await?
        .try_get(0)?;
    ensure!(note == "fresh", "the replaced row kept note = {note:?}");
    client
        .batch_execute("ALTER TABLE things DROP COLUMN note")
        .await?;

    // A trigger of the user's sees the row deleted and the new one inserted.
    client
        .batch_execute(
            "CREATE TABLE seen (op text, at serial);
             CREATE FUNCTION note_op() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN INSERT INTO seen (op) VALUES (TG_OP); RETURN NULL; END $$;
             CREATE TRIGGER note_op AFTER INSERT OR UPDATE OR DELETE ON things
               FOR EACH ROW EXECUTE FUNCTION note_op();",
        )
        .await?;
    land(&mut client, &plan, "u4", &[update_of("x", 15, 4)]).await?;
    ensure!(held(&client).await? == Some(4));
    let ops: Vec<String> = client
        .query("SELECT op FROM seen ORDER BY at", &[])
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    ensure!(ops == ["DELETE", "INSERT"], "the trigger saw {ops:?}");
    client
        .batch_execute("DROP TRIGGER note_op ON things")
        .await?;

    // A row refused on the way in place: it alone becomes a reject, the rest lands.
    refuse_n_from_100(&client).await?;
    let landed = land(
        &mut client,
        &plan,
        "u5",
        &[update_of("x", 16, 5), update_of("y", 16, 500)],
    )
    .await?;
    ensure!(held(&client).await? == Some(5));
    let Landed::Committed { rows, rejects, .. } = landed else {
        anyhow::bail!("the batch was not landed: {landed:?}");
    };
    ensure!(rows == 1 && rejects.total() == 1, "{landed:?}");
    let rejected: Vec<(String, String)> = client
        .query(
            "SELECT doc_id, operation FROM _migrate_rejects WHERE batch_id = 'u5'",
            &[],
        )
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<_>>()?;
    ensure!(
        rejected == [("y".to_string(), "update".to_string())],
        "rejects: {rejected:?}"
    );
    Ok(())
}

/// A change batch deletes the rejects of the documents it replaces by index: a
/// collection with many rejects does not make every change batch read all of them
/// (with 200,000 rejects a scan took a second per batch).
#[tokio::test(flavor = "multi_thread")]
async fn a_change_batch_finds_its_documents_rejects_by_index() -> Result<()> {
    let env = TestEnv::new("change_rejects").await?;
    let (mut client, plan) = things(&env).await?;
    client
        .batch_execute(
            "INSERT INTO _migrate_rejects (run, collection, batch_id, doc_id, error, raw_bson)
             SELECT 'order', 'things', 'old', 'r' || g, 'refused', '\\x00'
             FROM generate_series(1, 20000) g;
             ANALYZE _migrate_rejects;",
        )
        .await?;
    let before = rejects_scans(&client).await?;
    land(&mut client, &plan, "r1", &[update_of("r7", 10, 1)]).await?;
    let after = rejects_scans(&client).await?;
    ensure!(
        after.0 == before.0 && after.1 > before.1,
        "sequential and index scans of the rejects went from {before:?} to {after:?}"
    );
    let left: i64 = client
        .query_one(
            "SELECT count(*) FROM _migrate_rejects WHERE doc_id = 'r7'",
            &[],
        )
        .await?
        .try_get(0)?;
    ensure!(left == 0, "the replaced document's reject stayed");
    Ok(())
}

/// Sequential and index scans of the rejects table so far.
async fn rejects_scans(client: &tokio_postgres::Client) -> Result<(i64, i64)> {
    table_scans(client, "_migrate_rejects").await
}

/// Sequential and index scans of a table so far, as PostgreSQL's statistics count them
/// (this session's pending counts flushed first).
async fn table_scans(client: &tokio_postgres::Client, table: &str) -> Result<(i64, i64)> {
    client
        .batch_execute("SELECT pg_stat_force_next_flush()")
        .await?;
    let row = client
        .query_one(
            "SELECT seq_scan, coalesce(idx_scan, 0) FROM pg_stat_user_tables
             WHERE relid = to_regclass($1)",
            &[&table],
        )
        .await?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}

/// How many statements the session keeps prepared (`pg_prepared_statements` shows the
/// asking session's own; tokio-postgres prepares this query too, for its run).
async fn prepared(client: &tokio_postgres::Client) -> Result<i64> {
    Ok(client
        .query_one(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement NOT LIKE '%pg_prepared_statements%'",
            &[],
        )
        .await?
        .try_get(0)?)
}

/// A change batch's statements are prepared once per connection and reused: by every
/// batch after, after a transaction that rolled back (a refused row sends the batch
/// down the careful path), and on a table dropped and created again.
#[tokio::test(flavor = "multi_thread")]
async fn change_batches_reuse_the_statements_prepared_on_their_connection() -> Result<()> {
    let env = TestEnv::new("change_prepared").await?;
    let (mut client, plan) = things(&env).await?;
    ensure!(prepared(&client).await? == 0, "prepared before any batch");
    land(&mut client, &plan, "p1", &[update_of("x", 10, 1)]).await?;
    land(&mut client, &plan, "p2", &[update_of("x", 11, 2)]).await?;
    let after_two = prepared(&client).await?;
    ensure!(after_two > 0, "nothing prepared");
    for n in 3..10 {
        land(
            &mut client,
            &plan,
            &format!("p{n}"),
            &[update_of("x", 10 + n as u32, n)],
        )
        .await?;
    }
    ensure!(held(&client).await? == Some(9));
    ensure!(
        prepared(&client).await? == after_two,
        "seven batches more prepared {} statements more",
        prepared(&client).await? - after_two
    );

    // A refused row: the upsert fails, the transaction rolls back, the batch lands by
    // delete and COPY; what was prepared before is still there for the next batches.
    refuse_n_from_100(&client).await?;
    let landed = land(
        &mut client,
        &plan,
        "p10",
        &[update_of("x", 20, 10), update_of("y", 20, 500)],
    )
    .await?;
    ensure!(
        matches!(landed, Landed::Committed { rows: 1, .. }),
        "{landed:?}"
    );
    let after_careful = prepared(&client).await?;
    land(&mut client, &plan, "p11", &[update_of("x", 21, 11)]).await?;
    ensure!(held(&client).await? == Some(11));
    ensure!(prepared(&client).await? == after_careful);

    // The table dropped and created again: the same statements write the new one.
    client.batch_execute("DROP TABLE things").await?;
    landing::schema::ensure_table(&mut client, &plan, None, None).await?;
    land(&mut client, &plan, "p12", &[update_of("x", 22, 12)]).await?;
    ensure!(held(&client).await? == Some(12));
    ensure!(prepared(&client).await? == after_careful);
    Ok(())
}

/// The careful path's lookup of a batch's keys in the target is planned for the table
/// as it is at each batch, not once: planned while the table was nearly empty, it
/// would scan the whole table once the snapshot has filled it.
#[tokio::test(flavor = "multi_thread")]
async fn the_careful_paths_key_lookup_uses_the_key_once_the_table_has_grown() -> Result<()> {
    let env = TestEnv::new("change_key_plan").await?;
    let (mut client, plan) = things(&env).await?;
    refuse_n_from_100(&client).await?;
    // More careful batches than PostgreSQL runs before it keeps a generic plan (5).
    let careful = |n: u32| {
        [
            update_of(&format!("a{n}"), 10 + n, 1),
            update_of(&format!("b{n}"), 10 + n, 500),
        ]
    };
    for n in 0..8 {
        land(&mut client, &plan, &format!("c{n}"), &careful(n)).await?;
    }
    client
        .batch_execute(
            "INSERT INTO things (_id, doc) SELECT 'k' || g, '{}' FROM generate_series(1, 50000) g",
        )
        .await?;
    let before = table_scans(&client, "things").await?;
    let landed = land(&mut client, &plan, "c-last", &careful(100)).await?;
    ensure!(
        matches!(landed, Landed::Committed { rows: 1, .. }),
        "{landed:?}"
    );
    let after = table_scans(&client, "things").await?;
    ensure!(
        after.0 == before.0 && after.1 > before.1,
        "sequential and index scans of the table went from {before:?} to {after:?}"
    );
    Ok(())
}
