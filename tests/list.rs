//! The list endpoint over a few hundred credentials: filters, sorts, pages.
//! Targets are in-process SSH servers on 127.1.x.y, one address each.

mod support;

use std::collections::HashSet;

use futures::StreamExt;
use serde_json::{Value, json};
use support::fake_ssh::{self, FakeSsh};
use support::server::{Options, Server, err_code};

const COUNT: u32 = 300;

fn body(name: &str, ip: std::net::SocketAddr) -> Value {
    json!({
        "target_type": "HOST",
        "name": name,
        "ssh_credential_property": {
            "targets": [{ "ip": ip.ip().to_string(), "port": ip.port() }],
            "username": fake_ssh::USER, "type": "PASSWORD", "passphrase": fake_ssh::PASSWORD,
        }
    })
}

fn name_of(i: u32) -> String {
    // Mixed case, so sorting by name shows it is case-folded.
    if i.is_multiple_of(3) {
        format!("Cred-{i:03}")
    } else {
        format!("cred-{i:03}")
    }
}

async fn populated() -> (Server, FakeSsh) {
    let fake = FakeSsh::start(&fake_ssh::loopback_ips(1, COUNT + 1)).await;
    let server = Server::start(Options::default());
    let mut bodies: Vec<Value> = (0..COUNT)
        .map(|i| body(&name_of(i), fake.addrs[i as usize]))
        .collect();
    bodies.push(body("50%_off", fake.addrs[COUNT as usize]));
    let results: Vec<(u16, Value)> = futures::stream::iter(bodies)
        .map(|b| {
            let server = &server;
            async move { server.post("/api/v1/security/credential", b).await }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    for (status, envelope) in &results {
        assert_eq!(*status, 200, "{envelope}");
    }
    (server, fake)
}

async fn page(server: &Server, query: &str) -> Value {
    let (status, envelope) = server
        .get(&format!("/api/v1/security/credentials?{query}"))
        .await;
    assert_eq!(status, 200, "{query}: {envelope}");
    envelope["data"].clone()
}

fn names(page: &Value) -> Vec<String> {
    page["contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

fn ids(page: &Value) -> Vec<u64> {
    page["contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["credential_id"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn filters_sorts_and_pages() {
    let (server, _fake) = populated().await;
    let total = u64::from(COUNT) + 1;

    // Defaults: page 1 of 10, newest first.
    let first = page(&server, "").await;
    assert_eq!(
        first["page"],
        json!({ "total_elements": total, "total_pages": total.div_ceil(10), "size": 10, "number": 1 })
    );
    let newest = ids(&first);
    assert_eq!(newest.len(), 10);
    assert!(newest.windows(2).all(|w| w[0] > w[1]), "{newest:?}");

    // Walking every page by name gives each credential once, case-folded order.
    let mut walked = Vec::new();
    for number in 1..=total.div_ceil(37) {
        walked.extend(names(
            &page(&server, &format!("sort=name&page_size=37&page={number}")).await,
        ));
    }
    assert_eq!(walked.len() as u64, total);
    let mut expected = walked.clone();
    expected.sort_by_key(|n| n.to_lowercase());
    assert_eq!(walked, expected);
    assert_eq!(walked.iter().collect::<HashSet<_>>().len() as u64, total);

    // sort_order is case-insensitive; API names of sort fields are accepted.
    let desc = page(&server, "sort=NAME&sort_order=Desc&page_size=3").await;
    assert_eq!(names(&desc), vec!["cred-299", "cred-298", "Cred-297"]);
    let by_id = page(&server, "sort=credential_id&sort_order=asc&page_size=5").await;
    assert!(ids(&by_id).windows(2).all(|w| w[0] < w[1]));
    // Without `sort`, obshell's order whatever `sort_order` says: newest
    // first.
    let unsorted = page(&server, "sort_order=asc&page_size=5").await;
    assert!(ids(&unsorted).windows(2).all(|w| w[0] > w[1]), "{unsorted}");
    let by_type = page(&server, "sort=access_target&page_size=400").await;
    assert_eq!(ids(&by_type).len() as u64, total);

    // Filters.
    let one = page(&server, &format!("credential_id={}", newest[3])).await;
    assert_eq!(ids(&one), vec![newest[3]]);
    assert_eq!(one["page"]["total_elements"], 1);
    assert_eq!(
        page(&server, "target_type=host&page_size=1").await["page"]["total_elements"],
        total
    );
    assert_eq!(
        page(&server, "target_type=OB").await["page"]["total_elements"],
        0
    );
    let by_name = page(&server, "key_word=CRED-01&sort=name").await;
    assert_eq!(names(&by_name), (10..20).map(name_of).collect::<Vec<_>>());
    assert_eq!(
        page(&server, "key_word=FAKE&page_size=1").await["page"]["total_elements"],
        total
    );
    // ip 127.1.0.15 and 127.1.0.150-159.
    assert_eq!(
        page(&server, "key_word=127.1.0.15").await["page"]["total_elements"],
        11
    );
    // % and _ are literal.
    assert_eq!(names(&page(&server, "key_word=%25").await), vec!["50%_off"]);
    assert_eq!(names(&page(&server, "key_word=_").await), vec!["50%_off"]);
    assert_eq!(
        page(&server, "key_word=PASSWORD").await["page"]["total_elements"],
        0
    );
    let combined = page(
        &server,
        "key_word=cred-1&target_type=HOST&sort=name&page=2&page_size=5",
    )
    .await;
    assert_eq!(combined["page"]["total_elements"], 100);
    assert_eq!(
        names(&combined),
        (105..110).map(name_of).collect::<Vec<_>>()
    );

    // Pages beyond the end are empty; the SDK's huge page size returns all.
    let beyond = page(&server, "page=1000").await;
    assert_eq!(beyond["contents"], json!([]));
    assert_eq!(beyond["page"]["total_elements"], total);
    let all = page(
        &server,
        "page_size=9223372036854775807&size=9223372036854775807",
    )
    .await;
    assert_eq!(ids(&all).len() as u64, total);
    assert_eq!(all["page"]["size"], 9223372036854775807u64);
    assert_eq!(all["page"]["total_pages"], 1);
    let overflow = page(
        &server,
        "page=9223372036854775807&page_size=9223372036854775807",
    )
    .await;
    assert_eq!(overflow["contents"], json!([]));

    // An update moves a credential to the end of update_time order.
    let target = newest[5];
    let (status, current) = server
        .get(&format!("/api/v1/security/credential/{target}"))
        .await;
    assert_eq!(status, 200);
    let secret = &current["data"]["ssh_secret"];
    let patch = json!({
        "name": "renamed",
        "ssh_credential_property": { "targets": secret["targets"], "username": secret["username"], "type": "PASSWORD", "passphrase": "" }
    });
    let (status, envelope) = server
        .patch(&format!("/api/v1/security/credential/{target}"), patch)
        .await;
    assert_eq!(status, 200, "{envelope}");
    let latest = page(&server, "sort=update_time&sort_order=desc&page_size=1").await;
    assert_eq!(ids(&latest), vec![target]);

    // Bad parameters are refused, not ignored.
    for query in [
        "sort=password",
        "sort_order=up",
        "page=abc",
        "page_size=1.5",
    ] {
        let (status, envelope) = server
            .get(&format!("/api/v1/security/credentials?{query}"))
            .await;
        assert_eq!(status, 400, "{query}");
        assert!(["Common.IllegalArgument", "Common.BindJsonFailed"].contains(&err_code(&envelope)));
    }
}
