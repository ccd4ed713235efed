//! Pages stay exact while records come and go: a NextToken names the position after the
//! last item returned, not an offset, so deleting items before it or adding items anywhere
//! never skips or repeats one that existed throughout.

use corral_testkit::{Rng, TestContext};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

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

/// DescribeInstances pages through launches and terminations made while it pages, from
/// another connection: for random page sizes, with and without a filter on the state, and
/// random mixes of launches and terminations, every instance that existed throughout is
/// listed exactly once, and no instance twice. The instances terminated come before the
/// lasting ones as well as among them, so with the state filter each termination moves every
/// position after it (what an offset would skip over).
#[tokio::test]
async fn instance_pages_under_concurrent_launches_and_terminations_list_every_lasting_instance_once() {
    let ctx = TestContext::new().await;
    let (mut doomed, mut lasting) = (Vec::new(), Vec::new());
    for _ in 0..8 {
        doomed.extend(ctx.run(3, &[]).await);
        lasting.extend(ctx.run(5, &[]).await);
    }
    for id in &lasting {
        ctx.wait_state(id, "running").await;
    }
    for (round, seed) in [0x9e37_79b9_7f4a_7c15u64, 7, 1_000_003, 0x51ed_270b].into_iter().enumerate() {
        let mut rng = Rng(seed);
        let size = 5 + rng.below(4);
        let filtered = round % 2 == 0;
        let done = AtomicBool::new(false);
        let pager = async {
            let mut seen: HashMap<String, usize> = HashMap::new();
            let mut token: Option<String> = None;
            for _ in 0..100 {
                let size = size.to_string();
                let mut params = vec![("MaxResults", size.as_str())];
                if filtered {
                    params.extend([("Filter.1.Name", "instance-state-name"), ("Filter.1.Value.1", "running")]);
                }
                if let Some(t) = &token {
                    params.push(("NextToken", t));
                }
                let r = ctx.call("DescribeInstances", &params).await;
                for id in r.ok().texts("instanceId") {
                    *seen.entry(id).or_default() += 1;
                }
                token = r.text("nextToken");
                if token.is_none() {
                    break;
                }
                tokio::task::yield_now().await;
            }
            done.store(true, Ordering::SeqCst);
            (seen, token)
        };
        let churn = async {
            let mut ops = 0;
            while !done.load(Ordering::SeqCst) {
                if !doomed.is_empty() && rng.below(3) > 0 {
                    let id = doomed.remove(rng.below(doomed.len()));
                    ctx.call("TerminateInstances", &[("InstanceId.1", &id)]).await.ok();
                } else {
                    doomed.extend(ctx.run(1 + rng.below(2), &[]).await);
                }
                ops += 1;
                tokio::task::yield_now().await;
            }
            ops
        };
        let ((seen, token), ops) = tokio::join!(pager, churn);
        assert!(token.is_none(), "seed {seed}: paging did not end");
        assert!(ops > 0, "seed {seed}: nothing changed while it paged");
        for id in &lasting {
            assert_eq!(seen.get(id), Some(&1), "seed {seed}, pages of {size}: {id} listed {:?} times", seen.get(id));
        }
        assert!(seen.values().all(|n| *n == 1), "seed {seed}: an instance was listed twice: {seen:?}");
    }
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
