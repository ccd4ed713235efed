//! Pages stay exact while records come and go: a NextToken names the position after the
//! last item returned, not an offset, so deleting items before it or adding items anywhere
//! never skips or repeats one that existed throughout.

use corral_testkit::TestContext;
use std::collections::HashMap;

#[tokio::test]
async fn pages_under_churn_list_every_lasting_volume_once() {
    let ctx = TestContext::new().await;
    // Churned volumes come first, so deleting them shifts everything after them.
    let mut churn = Vec::new();
    for _ in 0..12 {
        churn.push(ctx.volume("1", "local-1a").await);
    }
    let mut lasting = Vec::new();
    for _ in 0..23 {
        lasting.push(ctx.volume("1", "local-1a").await);
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut params = vec![("MaxResults", "5".to_string())];
        if let Some(t) = &token {
            params.push(("NextToken", t.clone()));
        }
        let p: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = ctx.call("DescribeVolumes", &p).await;
        let ids = r.ok().texts("volumeId");
        assert!(ids.len() <= 5, "{ids:?}");
        for id in ids {
            *seen.entry(id).or_default() += 1;
        }
        pages += 1;
        // Between pages: the oldest volume goes (listed already, before every lasting one:
        // an offset would now skip one), a new one comes.
        if !churn.is_empty() {
            let gone = churn.remove(0);
            ctx.call("DeleteVolume", &[("VolumeId", &gone)]).await.ok();
        }
        ctx.volume("1", "local-1a").await;
        token = r.text("nextToken");
        if token.is_none() {
            break;
        }
        assert!(pages < 50, "paging does not end");
    }
    for id in &lasting {
        assert_eq!(seen.get(id), Some(&1), "{id} seen {:?} times over {pages} pages", seen.get(id));
    }
    assert!(seen.values().all(|n| *n == 1), "an item was listed twice: {seen:?}");
}

#[tokio::test]
async fn a_token_from_another_call_or_garbage_is_refused() {
    let ctx = TestContext::new().await;
    for _ in 0..6 {
        ctx.volume("1", "local-1a").await;
    }
    ctx.call("DescribeVolumes", &[("MaxResults", "5"), ("NextToken", "garbage")]).await.err("InvalidPaginationToken");
    let r = ctx.call("DescribeVolumes", &[("MaxResults", "5")]).await;
    let token = r.ok().text("nextToken").expect("six volumes make two pages");
    let rest = ctx.call("DescribeVolumes", &[("MaxResults", "5"), ("NextToken", &token)]).await;
    assert_eq!(rest.ok().texts("volumeId").len(), 1);
    assert!(rest.text("nextToken").is_none());
}
