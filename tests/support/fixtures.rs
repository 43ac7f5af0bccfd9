//! The compare fixtures of testdata/captures: what every capture of their one moment must give.
use serde_json::Value;
use std::collections::BTreeMap;

/// class → sorted list of the local ports of the rows in it.
pub fn ports_by_class(report: &Value) -> BTreeMap<String, Vec<u64>> {
    let mut map: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for row in report["rows"].as_array().unwrap() {
        let side = if row["memory"].is_null() {
            &row["capture"]
        } else {
            &row["memory"]
        };
        map.entry(row["class"].as_str().unwrap().to_string())
            .or_default()
            .push(side["local_port"].as_u64().unwrap());
    }
    for v in map.values_mut() {
        v.sort_unstable();
    }
    map
}

/// The verdicts every capture of the fixture moment (testdata/captures, against
/// memory-win7.json) must give; `timed`: the format carries create times.
pub fn expected(timed: bool) -> BTreeMap<String, Vec<u64>> {
    let mut m: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    m.insert("hidden_from_api".into(), vec![49800]);
    m.insert("not_in_memory".into(), vec![49900]);
    m.insert("pid_mismatch".into(), vec![445]);
    m.insert("created_after_capture".into(), vec![50555]);
    m.insert("freed_only".into(), vec![53]);
    if timed {
        m.insert("time_mismatch".into(), vec![137]);
        m.insert("api_zero_time".into(), vec![49700, 49723, 49750]);
        m.insert("match".into(), vec![135, 135, 5353, 5985, 5985]);
    } else {
        m.insert("state_changed".into(), vec![49750]);
        m.insert(
            "match".into(),
            vec![135, 135, 137, 5353, 5985, 5985, 49700, 49723],
        );
    }
    m
}
