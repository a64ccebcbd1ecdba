//! The hub (DESIGN.md, "The hub") over raw WebSocket sessions against the real server: room
//! commands and their acks, presence, relays, and malformed commands.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use serde_json::{json, Value};

/// Nothing more should arrive: long enough for a stray relay to show up on loopback.
const QUIET: Duration = Duration::from_millis(150);

async fn join(ws: &mut Ws, ack: u64, room: &str) -> Value {
    ws.call(ack, json!(["join-room", room])).await
}

#[actix_rt::test]
async fn join_room_acks_ok_with_room_and_size() {
    let srv = TestServer::start(config());
    let (mut a, _) = ws_client(&srv).await;
    let (mut b, _) = ws_client(&srv).await;
    a.send(r#"421["join-room","r"]"#).await;
    assert_eq!(
        a.recv_text().await,
        r#"431[{"ok":true,"room":"r","size":1}]"#
    );
    assert_eq!(
        join(&mut b, 1, "r").await,
        json!([{"ok": true, "room": "r", "size": 2}])
    );
    // joining twice is not an error and notifies nobody
    a.recv_event().await; // b's presence
    assert_eq!(
        join(&mut b, 2, "r").await,
        json!([{"ok": true, "room": "r", "size": 2}])
    );
    a.expect_silence(QUIET).await;
}

#[actix_rt::test]
async fn presence_join_and_leave_reach_the_other_members_only() {
    let srv = TestServer::start(config());
    let (mut a, a_id) = ws_client(&srv).await;
    let (mut b, b_id) = ws_client(&srv).await;
    let (mut outsider, _) = ws_client(&srv).await;
    join(&mut a, 1, "r").await;
    join(&mut b, 1, "r").await;
    assert_eq!(
        a.recv_text().await,
        format!(r#"42["join-room",{{"room":"r","id":"{b_id}"}}]"#)
    );
    assert_eq!(
        b.call(2, json!(["leave-room", "r"])).await,
        json!([{"ok": true, "room": "r", "size": 1}])
    );
    assert_eq!(
        a.recv_event().await,
        json!(["leave-room", {"room": "r", "id": b_id}])
    );
    // leaving a room one is not in acks ok and notifies nobody
    assert_eq!(
        b.call(3, json!(["leave-room", "r"])).await,
        json!([{"ok": true, "room": "r", "size": 1}])
    );
    // a disconnect is a leave too
    join(&mut b, 4, "r").await;
    a.recv_event().await;
    join(&mut outsider, 1, "elsewhere").await;
    a.close().await;
    assert_eq!(
        b.recv_event().await,
        json!(["leave-room", {"room": "r", "id": a_id}])
    );
    outsider.expect_silence(QUIET).await;
    b.expect_silence(QUIET).await;
}

#[actix_rt::test]
async fn to_room_reaches_every_other_member_and_is_not_echoed_to_the_sender() {
    let srv = TestServer::start(config());
    let (mut a, _) = ws_client(&srv).await;
    let (mut b, _) = ws_client(&srv).await;
    let (mut c, _) = ws_client(&srv).await;
    let (mut outsider, _) = ws_client(&srv).await;
    join(&mut a, 1, "r").await;
    join(&mut b, 1, "r").await;
    a.recv_event().await;
    join(&mut c, 1, "r").await;
    a.recv_event().await;
    b.recv_event().await;

    a.send(r#"422["to-room","r","chat","hi",{"z":1,"a":[true,null]}]"#)
        .await;
    assert_eq!(a.recv_text().await, r#"432[{"ok":true}]"#);
    // relayed unchanged, object key order included
    for member in [&mut b, &mut c] {
        assert_eq!(
            member.recv_text().await,
            r#"42["chat","hi",{"z":1,"a":[true,null]}]"#
        );
    }
    a.expect_silence(QUIET).await;
    outsider.expect_silence(Duration::ZERO).await;

    // the sender need not be a member
    assert_eq!(
        outsider
            .call(2, json!(["to-room", "r", "from-outside", 1]))
            .await,
        json!([{"ok": true}])
    );
    for member in [&mut a, &mut b, &mut c] {
        assert_eq!(member.recv_event().await, json!(["from-outside", 1]));
    }
    outsider.expect_silence(QUIET).await;
}

#[actix_rt::test]
async fn to_room_relays_arrive_in_the_order_sent() {
    let srv = TestServer::start(config());
    let (mut a, _) = ws_client(&srv).await;
    let (mut b, _) = ws_client(&srv).await;
    join(&mut b, 1, "r").await;
    for i in 0..50 {
        a.emit(None, json!(["to-room", "r", "n", i])).await;
    }
    for i in 0..50 {
        assert_eq!(b.recv_event().await, json!(["n", i]));
    }
}

#[actix_rt::test]
async fn to_room_keeps_binary_arguments_binary() {
    let srv = TestServer::start(config());
    let (mut a, _) = ws_client(&srv).await;
    let (mut b, _) = ws_client(&srv).await;
    join(&mut b, 1, "r").await;
    a.send(r#"451-3["to-room","r","file","name.bin",{"_placeholder":true,"num":0}]"#)
        .await;
    a.send_binary(Bytes::from_static(&[0, 1, 2, 0xfe])).await;
    assert_eq!(a.recv_text().await, r#"433[{"ok":true}]"#);
    assert_eq!(
        b.recv_text().await,
        r#"451-["file","name.bin",{"_placeholder":true,"num":0}]"#
    );
    assert_eq!(b.recv_binary().await, Bytes::from_static(&[0, 1, 2, 0xfe]));
}

#[actix_rt::test]
async fn broadcast_to_two_rooms_reaches_a_member_of_both_once() {
    let srv = TestServer::start(config());
    let (mut both, _) = ws_client(&srv).await;
    let (mut only_a, _) = ws_client(&srv).await;
    let (mut only_b, _) = ws_client(&srv).await;
    let (mut neither, _) = ws_client(&srv).await;
    join(&mut both, 1, "A").await;
    join(&mut both, 2, "B").await;
    join(&mut only_a, 1, "A").await;
    both.recv_event().await;
    join(&mut only_b, 1, "B").await;
    both.recv_event().await;

    // the test application calls Namespace::to("A").to("B").emit(...)
    assert_eq!(
        neither
            .call(
                1,
                json!(["broadcast", {"rooms": ["A", "B"], "event": "news", "args": [7]}])
            )
            .await,
        json!([{"ok": true}])
    );
    for member in [&mut both, &mut only_a, &mut only_b] {
        assert_eq!(member.recv_event().await, json!(["news", 7]));
    }
    both.expect_silence(QUIET).await;
    neither.expect_silence(Duration::ZERO).await;
}

#[actix_rt::test]
async fn list_rooms_gives_rooms_with_sizes_without_socket_id_rooms() {
    let srv = TestServer::start(config());
    let (mut a, _) = ws_client(&srv).await;
    let (mut b, _) = ws_client(&srv).await;
    assert_eq!(
        a.call(1, json!(["list-rooms"])).await,
        json!([{"ok": true, "rooms": []}])
    );
    join(&mut a, 2, "alpha").await;
    join(&mut a, 3, "beta").await;
    join(&mut b, 1, "beta").await;
    a.recv_event().await;
    let reply = b.call(2, json!(["list-rooms"])).await;
    let mut rooms = reply[0]["rooms"].as_array().expect("rooms").clone();
    rooms.sort_by_key(|r| r["room"].as_str().map(str::to_owned));
    assert_eq!(reply[0]["ok"], json!(true));
    assert_eq!(
        rooms,
        [
            json!({"room": "alpha", "size": 1}),
            json!({"room": "beta", "size": 2})
        ]
    );
}

#[actix_rt::test]
async fn room_members_lists_the_socket_ids_in_the_room() {
    let srv = TestServer::start(config());
    let (mut a, a_id) = ws_client(&srv).await;
    let (mut b, b_id) = ws_client(&srv).await;
    let (mut c, _) = ws_client(&srv).await;
    join(&mut a, 1, "r").await;
    join(&mut b, 1, "r").await;
    let reply = c.call(1, json!(["room-members", "r"])).await;
    let mut members: Vec<String> = reply[0]["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m.as_str().expect("id").to_owned())
        .collect();
    members.sort();
    let mut expected = vec![a_id, b_id];
    expected.sort();
    assert_eq!(members, expected);
    assert_eq!(reply[0]["ok"], json!(true));
    assert_eq!(reply[0]["room"], json!("r"));
    assert_eq!(
        c.call(2, json!(["room-members", "nobody-here"])).await,
        json!([{"ok": true, "room": "nobody-here", "members": []}])
    );
}

#[actix_rt::test]
async fn delete_room_notifies_every_member_and_empties_the_room() {
    let srv = TestServer::start(config());
    let (mut a, _) = ws_client(&srv).await;
    let (mut b, _) = ws_client(&srv).await;
    let (mut requester, _) = ws_client(&srv).await;
    join(&mut a, 1, "doomed").await;
    join(&mut b, 1, "doomed").await;
    a.recv_event().await;
    assert_eq!(
        requester.call(1, json!(["delete-room", "doomed"])).await,
        json!([{"ok": true, "room": "doomed"}])
    );
    for member in [&mut a, &mut b] {
        assert_eq!(
            member.recv_text().await,
            r#"42["delete-room",{"room":"doomed"}]"#
        );
        // no leave-room presence for a deletion
        member.expect_silence(QUIET).await;
    }
    assert_eq!(
        requester.call(2, json!(["room-members", "doomed"])).await,
        json!([{"ok": true, "room": "doomed", "members": []}])
    );
    assert_eq!(
        requester.call(3, json!(["list-rooms"])).await,
        json!([{"ok": true, "rooms": []}])
    );
    // relays to the deleted room reach nobody
    requester
        .call(4, json!(["to-room", "doomed", "ghost"]))
        .await;
    a.expect_silence(QUIET).await;
    // deleting a room that does not exist acks ok
    assert_eq!(
        requester.call(5, json!(["delete-room", "never-was"])).await,
        json!([{"ok": true, "room": "never-was"}])
    );
}

#[actix_rt::test]
async fn delete_room_by_a_member_notifies_the_requester_too() {
    let srv = TestServer::start(config());
    let (mut a, _) = ws_client(&srv).await;
    join(&mut a, 1, "mine").await;
    a.emit(Some(2), json!(["delete-room", "mine"])).await;
    let mut got = vec![a.recv_text().await, a.recv_text().await];
    got.sort();
    assert_eq!(
        got,
        [
            r#"42["delete-room",{"room":"mine"}]"#,
            r#"432[{"ok":true,"room":"mine"}]"#
        ]
    );
}

#[actix_rt::test]
async fn malformed_hub_commands_ack_an_error_without_disconnecting() {
    let srv = TestServer::start(config());
    let (mut a, _) = ws_client(&srv).await;
    let (_b, b_id) = ws_client(&srv).await;
    let cases = [
        json!(["join-room"]),
        json!(["join-room", 42]),
        json!(["join-room", ""]),
        json!(["join-room", null]),
        json!(["leave-room", {"room": "r"}]),
        json!(["delete-room"]),
        json!(["room-members", ["r"]]),
        json!(["to-room"]),
        json!(["to-room", "r"]),
        json!(["to-room", "r", 5]),
        json!(["to-room", "r", "connect"]),
        json!(["to-room", "r", "disconnect", 1]),
        json!(["to-room", "r", "disconnecting"]),
        json!(["join-room", "x".repeat(257)]),
        json!(["join-room", b_id]),
    ];
    for (i, args) in cases.iter().enumerate() {
        let reply = a.call(i as u64 + 1, args.clone()).await;
        assert_eq!(reply[0]["ok"], json!(false), "{args}: {reply}");
        assert!(reply[0]["error"].is_string(), "{args}: {reply}");
    }
    a.send(r#"42["echo","still connected"]"#).await;
    assert_eq!(a.recv_text().await, r#"42["echo","still connected"]"#);
    assert_eq!(srv.sessions(), 2);
}

#[actix_rt::test]
async fn room_names_are_limited_to_256_bytes() {
    let srv = TestServer::start(config());
    let (mut a, _) = ws_client(&srv).await;
    let longest = "é".repeat(128); // 256 bytes, 128 characters
    assert_eq!(
        join(&mut a, 1, &longest).await,
        json!([{"ok": true, "room": longest, "size": 1}])
    );
    let too_long = format!("{longest}x");
    assert_eq!(too_long.len(), 257);
    assert_eq!(
        join(&mut a, 2, &too_long).await,
        json!([{"ok": false, "error": "room name longer than 256 bytes"}])
    );
    let reply = a.call(3, json!(["list-rooms"])).await;
    assert_eq!(reply[0]["rooms"], json!([{"room": longest, "size": 1}]));
}

#[actix_rt::test]
async fn hub_commands_without_an_ack_still_take_effect() {
    let srv = TestServer::start(config());
    let (mut a, _) = ws_client(&srv).await;
    let (mut b, b_id) = ws_client(&srv).await;
    join(&mut a, 1, "r").await;
    b.emit(None, json!(["join-room", "r"])).await;
    assert_eq!(
        a.recv_event().await,
        json!(["join-room", {"room": "r", "id": b_id}])
    );
    b.emit(None, json!(["to-room", "r", "hello"])).await;
    assert_eq!(a.recv_event().await, json!(["hello"]));
    b.expect_silence(QUIET).await;
}

#[actix_rt::test]
async fn hub_works_over_long_polling_too() {
    let srv = TestServer::start(config());
    let (p, _) = polling_client(&srv).await;
    let (mut ws, ws_id) = ws_client(&srv).await;
    p.post_ok(r#"421["join-room","mixed"]"#).await;
    assert_eq!(
        p.poll_one().await,
        r#"431[{"ok":true,"room":"mixed","size":1}]"#
    );
    join(&mut ws, 1, "mixed").await;
    ws.emit(None, json!(["to-room", "mixed", "hi", "poller"]))
        .await;
    let records = p.poll().await;
    let mut got: Vec<Value> = records
        .iter()
        .map(|r| parse(r).data.expect("payload"))
        .collect();
    if got.len() == 1 {
        // the relay may come in the next poll
        got.extend(
            p.poll()
                .await
                .iter()
                .map(|r| parse(r).data.expect("payload")),
        );
    }
    assert_eq!(got[0], json!(["join-room", {"room": "mixed", "id": ws_id}]));
    assert_eq!(got[1], json!(["hi", "poller"]));
}

#[actix_rt::test]
async fn to_room_addressed_to_a_socket_id_is_refused_and_reaches_nobody() {
    let srv = TestServer::start(config());
    let (mut a, _) = ws_client(&srv).await;
    let (mut b, b_id) = ws_client(&srv).await;
    let reply = a.call(1, json!(["to-room", b_id, "private", 1])).await;
    assert_eq!(
        reply,
        json!([{"ok": false, "error": "room is a socket id"}]),
        "{reply}"
    );
    b.expect_silence(QUIET).await;
}

#[actix_rt::test]
async fn rooms_are_separate_per_namespace() {
    use ferrio::config::{Config, NamespacePattern};
    let srv = TestServer::start(Config {
        namespaces: vec![
            NamespacePattern::Exact("/".to_owned()),
            NamespacePattern::Prefix("/org-".to_owned()),
        ],
        ..config()
    });
    let (mut root, _) = ws_client(&srv).await;
    join(&mut root, 1, "r").await;
    let (mut org, _) = Ws::open(&srv).await;
    org.send("40/org-1,").await;
    assert_eq!(org.recv_sio().await.kind, 0);
    org.send(r#"42/org-1,1["join-room","r"]"#).await;
    assert_eq!(
        org.recv_text().await,
        r#"43/org-1,1[{"ok":true,"room":"r","size":1}]"#
    );
    org.send(r#"42/org-1,2["to-room","r","x"]"#).await;
    assert_eq!(org.recv_text().await, r#"43/org-1,2[{"ok":true}]"#);
    root.expect_silence(QUIET).await;
    root.emit(None, json!(["to-room", "r", "y"])).await;
    org.expect_silence(QUIET).await;
}

#[actix_rt::test]
async fn to_room_reaches_100_members() {
    let srv = TestServer::start(config());
    let mut members = Vec::new();
    for i in 0..100 {
        let (mut c, _) = ws_client(&srv).await;
        let reply = join(&mut c, 1, "all").await;
        assert_eq!(reply[0]["size"], json!(i + 1));
        members.push(c);
    }
    let (mut sender, _) = ws_client(&srv).await;
    sender.call(1, json!(["to-room", "all", "hey", 1])).await;
    for c in &mut members {
        // skip the presence of those who joined later
        loop {
            let e = c.recv_event().await;
            if e[0] != json!("join-room") {
                assert_eq!(e, json!(["hey", 1]));
                break;
            }
        }
    }
}

#[actix_rt::test]
async fn joining_more_than_1024_rooms_is_refused() {
    let srv = TestServer::start(config());
    let (mut a, _) = ws_client(&srv).await;
    for i in 0..1024u64 {
        let reply = join(&mut a, i, &format!("r{i}")).await;
        assert_eq!(reply[0]["ok"], json!(true), "room {i}: {reply}");
    }
    assert_eq!(
        join(&mut a, 5000, "one-too-many").await,
        json!([{"ok": false, "error": "too many rooms"}])
    );
    // re-joining a room it is in is still fine
    assert_eq!(join(&mut a, 5001, "r0").await[0]["ok"], json!(true));
}

#[actix_rt::test]
async fn presence_follows_sockets_join_and_sockets_leave_from_the_server_api() {
    let srv = TestServer::start(config());
    let (mut a, _) = ws_client(&srv).await;
    let (mut b, b_id) = ws_client(&srv).await;
    join(&mut a, 1, "r").await;
    assert_eq!(
        b.call(1, json!(["sockets-join", {"of": b_id, "rooms": ["r"]}]))
            .await,
        json!([{"ok": true}])
    );
    assert_eq!(
        a.recv_event().await,
        json!(["join-room", {"room": "r", "id": b_id}])
    );
    assert_eq!(
        b.call(2, json!(["room-members", "r"])).await[0]["members"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    b.call(3, json!(["sockets-leave", {"of": b_id, "rooms": ["r"]}]))
        .await;
    assert_eq!(
        a.recv_event().await,
        json!(["leave-room", {"room": "r", "id": b_id}])
    );
    b.expect_silence(QUIET).await;
}

#[actix_rt::test]
async fn joining_a_room_named_after_a_socket_id_is_refused_even_ones_own() {
    let srv = TestServer::start(config());
    let (mut a, a_id) = ws_client(&srv).await;
    let (_b, b_id) = ws_client(&srv).await;
    for id in [&b_id, &a_id] {
        assert_eq!(
            join(&mut a, 1, id).await,
            json!([{"ok": false, "error": "room is a socket id"}]),
            "{id}"
        );
    }
    assert_eq!(
        a.call(2, json!(["list-rooms"])).await,
        json!([{"ok": true, "rooms": []}])
    );
}
