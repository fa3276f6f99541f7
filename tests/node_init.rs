//! `bramble node init` (first boot) on a scratch directory tree: the files it writes, that it
//! is idempotent, that it finishes after a power cut, and how it reports a bad node file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Scratch {
    _dir: tempfile::TempDir,
    boot: PathBuf,
    root: PathBuf,
}

fn scratch(node_file: Option<&str>) -> Scratch {
    let dir = tempfile::tempdir().unwrap();
    let boot = dir.path().join("boot");
    let root = dir.path().join("root");
    std::fs::create_dir_all(&boot).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(
        root.join("etc/hosts"),
        "127.0.0.1\tlocalhost\n127.0.1.1\tdebian\n",
    )
    .unwrap();
    if let Some(text) = node_file {
        std::fs::write(boot.join("bramble-node.toml"), text).unwrap();
    }
    Scratch {
        _dir: dir,
        boot,
        root,
    }
}

fn init(s: &Scratch) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bramble"))
        .args(["node", "init", "--boot"])
        .arg(&s.boot)
        .arg("--root")
        .arg(&s.root)
        .output()
        .unwrap()
}

/// Every file under `dir`: relative path → (contents, modification time).
fn tree(dir: &Path) -> BTreeMap<String, (Vec<u8>, std::time::SystemTime)> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                let meta = std::fs::metadata(&path).unwrap();
                files.insert(
                    rel,
                    (std::fs::read(&path).unwrap(), meta.modified().unwrap()),
                );
            }
        }
    }
    files
}

fn text(root: &Path, rel: &str) -> String {
    std::fs::read_to_string(root.join(rel)).unwrap()
}

const CLUSTER_NODE_2: &str = "id = 2\nservers = [\"bramble-1\", \"bramble-2\", \"bramble-3\"]\n";

#[test]
fn first_boot_writes_exactly_the_expected_files() {
    let s = scratch(Some(CLUSTER_NODE_2));
    let out = init(&s);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files: Vec<String> = tree(&s.root).into_keys().collect();
    assert_eq!(
        files,
        [
            "etc/bramble/bramble.toml",
            "etc/hostname",
            "etc/hosts",
            "var/lib/bramble/firstboot.done",
            "var/lib/kafka-logs/meta.properties",
            "var/lib/zookeeper/myid",
        ]
    );
    assert_eq!(text(&s.root, "var/lib/zookeeper/myid"), "2\n");
    assert_eq!(text(&s.root, "etc/hostname"), "bramble-2\n");
    assert_eq!(
        text(&s.root, "etc/hosts"),
        "127.0.0.1\tlocalhost\n127.0.1.1\tbramble-2\n"
    );
    let meta = text(&s.root, "var/lib/kafka-logs/meta.properties");
    assert!(
        meta.contains("broker.id=2\n") && meta.contains("cluster.id="),
        "{meta}"
    );
    let config = text(&s.root, "etc/bramble/bramble.toml");
    assert!(config.contains("[node]\nid = 2\n"), "{config}");
    assert!(config.contains("log_dirs = [\"/var/lib/kafka-logs\"]"));
    assert!(config.contains("data_dir = \"/var/lib/zookeeper\""));
    assert!(config.contains(
        "servers = { 1 = \"bramble-1:2888\", 2 = \"bramble-2:2888\", 3 = \"bramble-3:2888\" }"
    ));
    let log = text(&s.boot, "bramble-firstboot.log");
    assert!(
        log.contains("bramble node init: ok: node 2 (bramble-2) initialised"),
        "{log}"
    );
    assert_eq!(
        tree(&s.boot).len(),
        2,
        "the boot partition gains only the log"
    );
}

#[test]
fn every_node_of_a_cluster_gets_the_same_cluster_id() {
    let cluster_id = |id: u32| {
        let s = scratch(Some(
            &CLUSTER_NODE_2.replace("id = 2", &format!("id = {id}")),
        ));
        assert!(init(&s).status.success());
        let meta = text(&s.root, "var/lib/kafka-logs/meta.properties");
        meta.lines()
            .find(|l| l.starts_with("cluster.id="))
            .unwrap()
            .to_string()
    };
    assert_eq!(cluster_id(1), cluster_id(3));
}

#[test]
fn a_second_run_changes_nothing() {
    let s = scratch(Some(CLUSTER_NODE_2));
    assert!(init(&s).status.success());
    let (root_before, boot_before) = (tree(&s.root), tree(&s.boot));
    std::thread::sleep(std::time::Duration::from_millis(20));
    let out = init(&s);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        tree(&s.root),
        root_before,
        "contents and modification times unchanged"
    );
    assert_eq!(
        tree(&s.boot),
        boot_before,
        "nothing appended to the boot log"
    );
}

#[test]
fn a_run_cut_short_after_myid_is_completed_next_boot() {
    let s = scratch(Some("id = 3\n"));
    // The state a power cut leaves: myid renamed into place, nothing else, no stamp.
    std::fs::create_dir_all(s.root.join("var/lib/zookeeper")).unwrap();
    std::fs::write(s.root.join("var/lib/zookeeper/myid"), "3\n").unwrap();
    let out = init(&s);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text(&s.root, "var/lib/bramble/firstboot.done"), "id = 3\n");
    assert!(text(&s.root, "etc/bramble/bramble.toml").contains("[node]\nid = 3\n"));
    assert!(
        !text(&s.root, "etc/bramble/bramble.toml").contains("[cluster]"),
        "single node without servers"
    );
    assert!(text(&s.root, "var/lib/kafka-logs/meta.properties").contains("broker.id=3\n"));
}

#[test]
fn a_corrected_id_replaces_an_empty_half_done_layout() {
    let s = scratch(Some("id = 1\n"));
    assert!(init(&s).status.success());
    std::fs::remove_file(s.root.join("var/lib/bramble/firstboot.done")).unwrap();
    std::fs::write(s.boot.join("bramble-node.toml"), "id = 2\n").unwrap();
    assert!(init(&s).status.success());
    assert_eq!(text(&s.root, "var/lib/zookeeper/myid"), "2\n");
    assert!(text(&s.root, "var/lib/kafka-logs/meta.properties").contains("broker.id=2\n"));
}

#[test]
fn a_log_dir_with_another_nodes_data_is_refused() {
    let s = scratch(Some("id = 1\n"));
    assert!(init(&s).status.success());
    std::fs::remove_file(s.root.join("var/lib/bramble/firstboot.done")).unwrap();
    std::fs::create_dir_all(s.root.join("var/lib/kafka-logs/sensors-0")).unwrap();
    std::fs::write(s.boot.join("bramble-node.toml"), "id = 2\n").unwrap();
    let out = init(&s);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("belongs to broker.id=1"));
    assert!(!s.root.join("var/lib/bramble/firstboot.done").exists());
}

#[test]
fn bad_or_missing_ids_fail_and_are_logged_on_the_boot_partition() {
    let cases: [(Option<&str>, &str); 6] = [
        (None, "cannot read"),
        (Some("hostname = \"pi\"\n"), "has no `id`"),
        (Some("id = 0\n"), "from 1 to 255"),
        (Some("id = 300\n"), "from 1 to 255"),
        (Some("id = \"two\"\n"), "from 1 to 255"),
        (
            Some("id = 4\nservers = [\"a\", \"b\", \"c\"]\n"),
            "not one of the servers",
        ),
    ];
    for (node_file, reason) in cases {
        let s = scratch(node_file);
        let out = init(&s);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{node_file:?} must fail");
        assert!(stderr.contains(reason), "{node_file:?}: stderr {stderr}");
        let log = text(&s.boot, "bramble-firstboot.log");
        assert!(
            log.contains("bramble node init: FAILED:") && log.contains(reason),
            "{node_file:?}: {log}"
        );
        let written: Vec<String> = tree(&s.root).into_keys().collect();
        assert_eq!(
            written,
            ["etc/hosts"],
            "{node_file:?}: nothing written on failure"
        );
    }
}

#[test]
fn failures_append_to_the_boot_log() {
    let s = scratch(Some("id = 0\n"));
    assert!(!init(&s).status.success());
    assert!(!init(&s).status.success());
    std::fs::write(s.boot.join("bramble-node.toml"), "id = 1\n").unwrap();
    assert!(init(&s).status.success());
    let log = text(&s.boot, "bramble-firstboot.log");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 3, "{log}");
    assert!(
        lines[0].contains("FAILED")
            && lines[1].contains("FAILED")
            && lines[2].contains("ok: node 1")
    );
}
