//! The README's first command: `zongzhi-lab demo` brings up 15 nodes and seeds them.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use zongzhi_tests::bin;

#[test]
fn demo_hierarchy_starts_and_seeds() {
    let dir = tempfile::tempdir().unwrap();
    let demo_dir = dir.path().join("demo");
    let out = Command::new(bin("zongzhi-lab")).args(["demo", "--exit-after-seed", "--dir"]).arg(&demo_dir).args(["--http-port", "0", "--quic-port", "0"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("15 centers"), "{text}");
    for name in ["示例市社会治安综合治理中心", "留下村社会治安综合治理工作站", "杨家牌楼村社会治安综合治理工作站"] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
    // The city row: it holds every case of the tree (8 villages × 4 + 3
    // escalated + 1 dispatched + 1 rated by its citizen on the public page
    // + 1 越级 filing at the county).
    let city = text.lines().find(|l| l.contains("330100000000")).unwrap();
    let held: u64 = city.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert_eq!(held, 38, "{city}");
    assert!(text.contains("/public/"), "the public page is listed:\n{text}");
    // A second run replaces the previous demo.
    assert!(demo_dir.join(".zongzhi-demo").exists());
}
