//! The data inventory (データの棚卸し): where personal data lives, at file,
//! archive-member, table and column level, with counts and never a value.
//!
//! # Format `anshin-inventory/1` (stable; fields are only ever added)
//!
//! ```json
//! {
//!   "format": "anshin-inventory/1",
//!   "scanned_at": "2026-12-05T18:40:00Z",
//!   "tool": {"name": "anshin-scan", "version": "0.1.0"},
//!   "parameters": {"inputs": ["./exports", "postgres://scanner@db:5432/shop"],
//!                  "tables": [], "row_limit": null, "min_confidence": "medium",
//!                  "include_test_values": true, "include": [], "exclude": []},
//!   "totals": {"objects": 120, "partial": 1, "skipped": 0, "locations": 3, "findings": 9,
//!              "categories": {"card": {"findings": 4, "locations": 2}}},
//!   "locations": [
//!     {"path": "postgres://db:5432/shop!public.customers", "column": "card_number",
//!      "kind": "table", "findings": 4, "records": 3,
//!      "categories": {"card": {"findings": 4, "records": 3, "test_values": 0}}}
//!   ],
//!   "incomplete": [{"path": "…", "status": "partial", "reason": "…"}],
//!   "changes": null
//! }
//! ```
//!
//! - A **location** is an object (a file, an archive member, standard input, a
//!   table) and, where findings have a column (CSV or sheet header, table
//!   column), the column: `column` is `null` for findings outside any named
//!   column. Locations are sorted by path, then column.
//! - **records** counts distinct records holding the category at that
//!   location: rows for tables, CSV files and sheets, lines for text.
//! - `incomplete` lists what was not fully scanned (why, never content).
//! - **changes** compares with the inventory the file held before (`null`
//!   when there was none): `new` locations (not in the earlier one), `gone`
//!   (in the earlier one, not found now although their object was fully
//!   scanned or no longer exists), `unverified` (in the earlier one, not
//!   found now, but their object was partial or skipped this time: absence is
//!   not proof), and `changed` (per-category findings or records differ).
//!   Comparing runs over different inputs reports everything outside the
//!   common inputs as new or gone: `same_parameters` says whether the inputs
//!   and settings were the same. Runs that looked for different categories
//!   (`parameters.categories`, written only for `--only`) are compared on the categories both
//!   looked for: a card-only run does not make e-mail addresses "gone".

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::{ObjectReport, Status};

/// The format tag this module writes and reads.
pub const FORMAT: &str = "anshin-inventory/1";

/// What the run was asked to do: inputs (database URLs without password) and
/// the settings that change what is found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Parameters {
    /// Paths and database URLs, as given (passwords removed, card numbers masked).
    pub inputs: Vec<String>,
    /// `--table` selections.
    pub tables: Vec<String>,
    /// `--row-limit`.
    pub row_limit: Option<u64>,
    /// `--min-confidence`.
    pub min_confidence: String,
    /// Whether public test card numbers were reported.
    pub include_test_values: bool,
    /// `--only`: the categories looked for; empty (and left out of the
    /// file) means every category, as in inventories from before `--only`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    /// `--include` globs.
    pub include: Vec<String>,
    /// `--exclude` globs.
    pub exclude: Vec<String>,
}

/// The producing tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tool {
    /// `anshin-scan`.
    pub name: String,
    /// Its version.
    pub version: String,
}

/// Counts of one category at one location.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CategoryCount {
    /// Findings.
    pub findings: u64,
    /// Distinct records (rows, or lines for text) holding it.
    pub records: u64,
    /// Public test values among the findings.
    pub test_values: u64,
}

/// One place where personal data lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// The object: path and inner path, `DATABASE!schema.table`, or
    /// `dump.sql!table` for a table of a SQL dump.
    pub path: String,
    /// The column (CSV or sheet header, table column), or `null`.
    pub column: Option<String>,
    /// What the object was read as (`text`, `csv`, `table`…).
    pub kind: String,
    /// All findings here.
    pub findings: u64,
    /// Distinct records here holding any finding.
    pub records: u64,
    /// Per category (stable names: `card`, `my_number`…).
    pub categories: BTreeMap<String, CategoryCount>,
}

impl Location {
    fn key(&self) -> (&str, Option<&str>) {
        (&self.path, self.column.as_deref())
    }
}

/// Totals of one category over all locations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CategoryTotal {
    /// Findings.
    pub findings: u64,
    /// Locations holding it.
    pub locations: u64,
}

/// Totals over the run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Totals {
    /// Objects scanned (files, members, tables).
    pub objects: u64,
    /// Objects partly scanned.
    pub partial: u64,
    /// Objects not scanned.
    pub skipped: u64,
    /// Locations holding personal data.
    pub locations: u64,
    /// Findings.
    pub findings: u64,
    /// Per category.
    pub categories: BTreeMap<String, CategoryTotal>,
}

/// An object that was not fully scanned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incomplete {
    /// The object.
    pub path: String,
    /// `partial` or `skipped`.
    pub status: String,
    /// Why (never content).
    pub reason: String,
}

/// A location that is in both inventories with different counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changed {
    /// The object.
    pub path: String,
    /// The column, or `null`.
    pub column: Option<String>,
    /// Counts per category before (categories now absent included).
    pub before: BTreeMap<String, CategoryCount>,
    /// Counts per category now.
    pub after: BTreeMap<String, CategoryCount>,
}

/// A location by name only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    /// The object.
    pub path: String,
    /// The column, or `null`.
    pub column: Option<String>,
}

/// What changed since the earlier inventory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Changes {
    /// When the earlier inventory was taken.
    pub previous_scanned_at: String,
    /// Whether inputs and settings were the same.
    pub same_parameters: bool,
    /// Locations found now and not before.
    pub new: Vec<Location>,
    /// Locations found before and not now, their object fully scanned or gone.
    pub gone: Vec<Place>,
    /// Locations found before and not now, their object not fully scanned now.
    pub unverified: Vec<Place>,
    /// Locations whose counts changed.
    pub changed: Vec<Changed>,
}

impl Changes {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.new.is_empty() && self.gone.is_empty() && self.unverified.is_empty() && self.changed.is_empty()
    }
}

/// A data inventory (see the module documentation for the format).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    /// Always [`FORMAT`].
    pub format: String,
    /// RFC 3339 UTC time the scan ended.
    pub scanned_at: String,
    /// The producing tool.
    pub tool: Tool,
    /// What the run was asked to do.
    #[serde(default)]
    pub parameters: Parameters,
    /// Totals.
    #[serde(default)]
    pub totals: Totals,
    /// Where personal data lives.
    #[serde(default)]
    pub locations: Vec<Location>,
    /// What was not fully scanned.
    #[serde(default)]
    pub incomplete: Vec<Incomplete>,
    /// What changed since the earlier inventory, if there was one.
    #[serde(default)]
    pub changes: Option<Changes>,
}

/// Why a file is not an inventory this version can read.
#[derive(Debug)]
pub struct NotAnInventory(pub String);

impl std::fmt::Display for NotAnInventory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotAnInventory {}

impl Inventory {
    /// Reads an inventory written by this or an earlier version.
    pub fn parse(bytes: &[u8]) -> Result<Self, NotAnInventory> {
        // Only the error's position, never its text: it can quote the file.
        let inventory: Self = serde_json::from_slice(bytes).map_err(|e| {
            NotAnInventory(format!(
                "not an anshin inventory (JSON error at line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        if inventory.format != FORMAT {
            return Err(NotAnInventory(format!("not an {FORMAT} file")));
        }
        let mut inventory = inventory;
        inventory.mask_names();
        Ok(inventory)
    }

    /// Masks card numbers in every name the inventory holds (paths, columns,
    /// reasons, inputs), as [`crate::mask_name`] does for a scan's own names:
    /// an inventory read from a file may have been edited, and its names are
    /// printed and copied into the next one.
    pub fn mask_names(&mut self) {
        let mask = |s: &mut String| *s = crate::mask_name(s);
        let mask_opt = |s: &mut Option<String>| s.iter_mut().for_each(mask);
        for l in &mut self.locations {
            mask(&mut l.path);
            mask_opt(&mut l.column);
        }
        for i in &mut self.incomplete {
            mask(&mut i.path);
            mask(&mut i.reason);
        }
        self.parameters.inputs.iter_mut().for_each(mask);
        if let Some(changes) = &mut self.changes {
            for l in &mut changes.new {
                mask(&mut l.path);
                mask_opt(&mut l.column);
            }
            for p in changes.gone.iter_mut().chain(changes.unverified.iter_mut()) {
                mask(&mut p.path);
                mask_opt(&mut p.column);
            }
            for c in &mut changes.changed {
                mask(&mut c.path);
                mask_opt(&mut c.column);
            }
        }
    }

    /// Compares with an earlier inventory (see the module documentation).
    pub fn diff(&self, previous: &Inventory) -> Changes {
        // Locations restricted to the common categories only when the runs
        // looked for different ones; otherwise compared as they are.
        let restricted;
        let (now, before) = if self.parameters.categories == previous.parameters.categories {
            (&self.locations, &previous.locations)
        } else {
            let looked_for = |p: &Parameters, name: &str| {
                p.categories.is_empty() || p.categories.iter().any(|c| c == name)
            };
            let common =
                |name: &str| looked_for(&self.parameters, name) && looked_for(&previous.parameters, name);
            restricted = (
                restrict(&self.locations, common),
                restrict(&previous.locations, common),
            );
            (&restricted.0, &restricted.1)
        };
        let now: BTreeMap<_, _> = now.iter().map(|l| (l.key(), l)).collect();
        let before: BTreeMap<_, _> = before.iter().map(|l| (l.key(), l)).collect();
        let incomplete = Unscanned::new(&self.incomplete);
        let mut changes = Changes {
            previous_scanned_at: previous.scanned_at.clone(),
            same_parameters: self.parameters == previous.parameters,
            ..Changes::default()
        };
        for (key, location) in &now {
            let Some(old) = before.get(key) else {
                changes.new.push((*location).clone());
                continue;
            };
            let mut before = old.categories.clone();
            for name in location.categories.keys() {
                before.entry(name.clone()).or_default();
            }
            let mut after = location.categories.clone();
            for name in old.categories.keys() {
                after.entry(name.clone()).or_default();
            }
            // Compared once both name the same categories: one counted zero
            // (an edited file may hold one) is the same as one absent.
            if before != after {
                changes.changed.push(Changed {
                    path: location.path.clone(),
                    column: location.column.clone(),
                    before,
                    after,
                });
            }
        }
        for (key, old) in &before {
            if now.contains_key(key) {
                continue;
            }
            let place = Place {
                path: old.path.clone(),
                column: old.column.clone(),
            };
            if incomplete.holds(&old.path) {
                changes.unverified.push(place);
            } else {
                changes.gone.push(place);
            }
        }
        changes
    }

    /// Serialises as pretty JSON with a final newline.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain structs and maps with string keys cannot fail.
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }
}

/// The objects a run did not fully scan, by path.
struct Unscanned<'a>(HashSet<&'a str>);

impl<'a> Unscanned<'a> {
    fn new(incomplete: &'a [Incomplete]) -> Self {
        Self(incomplete.iter().map(|i| i.path.as_str()).collect())
    }

    /// Whether the location `path` is an incomplete object or inside one (a
    /// member `a.zip!b.csv` of a partial archive, say): the path, or a prefix
    /// of it that ends before a `!` or `#`, is incomplete. A look-up per
    /// separator, not a comparison per incomplete object: a diff of large
    /// inventories stays linear.
    fn holds(&self, path: &str) -> bool {
        self.0.contains(path)
            || path
                .match_indices(['!', '#'])
                .any(|(end, _)| self.0.contains(&path[..end]))
    }
}

/// The locations as if only the categories `keep` accepts had been looked
/// for: those categories' counts, and locations left with none dropped.
/// `findings` and `records` are sums and maxima of what is kept (a location's
/// distinct records across categories are not known).
fn restrict(locations: &[Location], keep: impl Fn(&str) -> bool) -> Vec<Location> {
    locations
        .iter()
        .filter_map(|l| {
            let categories: BTreeMap<String, CategoryCount> = l
                .categories
                .iter()
                .filter(|(name, _)| keep(name))
                .map(|(n, c)| (n.clone(), *c))
                .collect();
            (!categories.is_empty()).then(|| Location {
                findings: categories.values().map(|c| c.findings).sum(),
                records: categories.values().map(|c| c.records).max().unwrap_or(0),
                categories,
                ..l.clone()
            })
        })
        .collect()
}

#[derive(Default)]
struct Spot {
    kind: &'static str,
    findings: u64,
    records: HashSet<RecordId>,
    categories: BTreeMap<&'static str, (u64, HashSet<RecordId>, u64)>,
}

/// A record: (page, line) for text (page 0 outside PDFs and slides), (0, row)
/// for rows of tables, CSV files and sheets.
type RecordId = (usize, usize);

/// Collects object reports into an inventory.
#[derive(Debug, Default)]
pub struct InventoryBuilder {
    locations: Vec<Location>,
    incomplete: Vec<Incomplete>,
    objects: u64,
    partial: u64,
    skipped: u64,
}

impl InventoryBuilder {
    /// Adds one object's findings.
    pub fn add(&mut self, report: &ObjectReport) {
        self.objects += 1;
        match report.status {
            Status::Complete => {}
            Status::Partial => self.partial += 1,
            Status::Skipped => self.skipped += 1,
        }
        if report.status != Status::Complete {
            self.incomplete.push(Incomplete {
                path: report.path.clone(),
                status: report.status.as_str().to_owned(),
                reason: report.reason.clone().unwrap_or_default(),
            });
        }
        // A SQL dump holds many tables: each is a location of its own
        // (`dump.sql!public.orders`), as a database table is.
        let mut spots: BTreeMap<(Option<&str>, Option<&str>), Spot> = BTreeMap::new();
        for f in &report.findings {
            let record = f.locator.record.as_ref();
            let column = record.and_then(|r| r.header.as_deref());
            let table = record.and_then(|r| r.table.as_deref());
            // Lines of different PDF pages or slides are different records.
            let id = record.map_or((f.locator.page.unwrap_or(0), f.locator.line), |r| (0, r.row));
            let spot = spots.entry((table, column)).or_default();
            spot.kind = report.kind.as_str();
            spot.findings += 1;
            spot.records.insert(id);
            let c = spot.categories.entry(f.category.as_str()).or_default();
            c.0 += 1;
            c.1.insert(id);
            c.2 += u64::from(f.test_value);
        }
        for ((table, column), spot) in spots {
            self.locations.push(Location {
                path: match table {
                    Some(t) => format!("{}!{t}", report.path),
                    None => report.path.clone(),
                },
                column: column.map(str::to_owned),
                kind: spot.kind.to_owned(),
                findings: spot.findings,
                records: spot.records.len() as u64,
                categories: spot
                    .categories
                    .into_iter()
                    .map(|(name, (findings, records, test_values))| {
                        (
                            name.to_owned(),
                            CategoryCount {
                                findings,
                                records: records.len() as u64,
                                test_values,
                            },
                        )
                    })
                    .collect(),
            });
        }
    }

    /// The inventory, compared with `previous` when there is one.
    pub fn finish(
        mut self,
        scanned_at: String,
        parameters: Parameters,
        previous: Option<&Inventory>,
    ) -> Inventory {
        self.locations
            .sort_by(|a, b| (&a.path, &a.column).cmp(&(&b.path, &b.column)));
        self.incomplete.sort_by(|a, b| a.path.cmp(&b.path));
        let mut totals = Totals {
            objects: self.objects,
            partial: self.partial,
            skipped: self.skipped,
            locations: self.locations.len() as u64,
            ..Totals::default()
        };
        for l in &self.locations {
            totals.findings += l.findings;
            for (name, c) in &l.categories {
                let t = totals.categories.entry(name.clone()).or_default();
                t.findings += c.findings;
                t.locations += 1;
            }
        }
        let mut inventory = Inventory {
            format: FORMAT.to_owned(),
            scanned_at,
            tool: Tool {
                name: "anshin-scan".to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
            },
            parameters,
            totals,
            locations: self.locations,
            incomplete: self.incomplete,
            changes: None,
        };
        inventory.changes = previous.map(|p| inventory.diff(p));
        inventory
    }
}

/// The changes in human form, English and Japanese, a line per location.
pub fn describe_changes(changes: &Changes) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Inventory changes since {} / 前回({})からの変化: {} new / 新規, {} gone / 消滅, {} changed / 増減, {} unverified / 未確認",
        changes.previous_scanned_at,
        changes.previous_scanned_at,
        changes.new.len(),
        changes.gone.len(),
        changes.changed.len(),
        changes.unverified.len()
    );
    if !changes.same_parameters {
        let _ = writeln!(
            out,
            "  note: the earlier inventory was made with other inputs or settings / 前回と入力または設定が異なります"
        );
    }
    let place = |path: &str, column: &Option<String>| {
        let path = crate::report::printable(path);
        match column {
            Some(c) => format!("{path} [{}]", crate::report::printable(c)),
            None => path.into_owned(),
        }
    };
    let counts = |m: &BTreeMap<String, CategoryCount>| {
        m.iter()
            .map(|(name, c)| format!("{name} {}", c.findings))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for l in &changes.new {
        let _ = writeln!(
            out,
            "  new        {}: {}",
            place(&l.path, &l.column),
            counts(&l.categories)
        );
    }
    for c in &changes.changed {
        let parts: Vec<String> = c
            .after
            .iter()
            .filter_map(|(name, after)| {
                let before = c.before.get(name).copied().unwrap_or_default();
                (before != *after).then(|| format!("{name} {} → {}", before.findings, after.findings))
            })
            .collect();
        let _ = writeln!(
            out,
            "  changed    {}: {}",
            place(&c.path, &c.column),
            parts.join(", ")
        );
    }
    for p in &changes.gone {
        let _ = writeln!(out, "  gone       {}", place(&p.path, &p.column));
    }
    for p in &changes.unverified {
        let _ = writeln!(
            out,
            "  unverified {} (not fully scanned this time / 今回は一部のみ)",
            place(&p.path, &p.column)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Category, Discovery, Limits, Scanner, TableColumn, key};

    fn discovery() -> Discovery {
        Discovery::new(Scanner::new(key::throwaway()), Limits::default())
    }

    fn inventory(
        d: &Discovery,
        rows: &[[Option<&str>; 2]],
        text: &str,
        previous: Option<&Inventory>,
    ) -> Inventory {
        let mut b = InventoryBuilder::default();
        let mut t = d.table(
            "db!customers",
            &[TableColumn::new("email"), TableColumn::new("電話")],
        );
        for row in rows {
            t.row(row);
        }
        b.add(&t.finish());
        d.scan_reader("notes.txt", &mut text.as_bytes(), &mut |r| b.add(&r));
        b.finish("2026-12-05T00:00:00Z".into(), Parameters::default(), previous)
    }

    #[test]
    fn counts_per_column_and_changes() {
        let d = discovery();
        let first = inventory(
            &d,
            &[
                [Some("a@example.com"), Some("090-1234-5678")],
                [Some("b@example.com"), None],
            ],
            "連絡先 c@example.com と d@example.com\nカード番号 4532015112830366\n",
            None,
        );
        assert!(first.changes.is_none());
        let keys: Vec<(&str, Option<&str>)> = first.locations.iter().map(Location::key).collect();
        assert_eq!(
            keys,
            vec![
                ("db!customers", Some("email")),
                ("db!customers", Some("電話")),
                ("notes.txt", None)
            ]
        );
        let email = &first.locations[0].categories["email"];
        assert_eq!((email.findings, email.records), (2, 2));
        let notes = &first.locations[2];
        assert_eq!((notes.findings, notes.records), (3, 2), "two e-mails on one line");
        assert_eq!(
            first.totals.categories["email"],
            CategoryTotal {
                findings: 4,
                locations: 2
            }
        );
        // Round trip through JSON, and no value in it.
        let json = first.to_json();
        let text = String::from_utf8_lossy(&json);
        assert!(!text.contains("a@example.com") && !text.contains("4532015112830366"));
        assert_eq!(Inventory::parse(&json).expect("parses"), first);
        assert!(Inventory::parse(b"{\"format\": \"other/1\", \"scanned_at\": \"\", \"tool\": {\"name\": \"x\", \"version\": \"1\"}}").is_err());
        assert!(Inventory::parse(b"hello").is_err());

        // Later: a row gone from the table, the phone column empty, the card gone, a new e-mail.
        let second = inventory(
            &d,
            &[[Some("a@example.com"), None]],
            "連絡先 c@example.com と d@example.com と e@example.com\n",
            Some(&first),
        );
        let changes = second.changes.clone().expect("changes");
        assert!(changes.same_parameters);
        assert!(changes.new.is_empty());
        assert_eq!(
            changes.gone,
            vec![Place {
                path: "db!customers".into(),
                column: Some("電話".into())
            }]
        );
        let changed: Vec<(&str, Option<&str>)> = changes
            .changed
            .iter()
            .map(|c| (c.path.as_str(), c.column.as_deref()))
            .collect();
        assert_eq!(
            changed,
            vec![("db!customers", Some("email")), ("notes.txt", None)]
        );
        let notes = &changes.changed[1];
        assert_eq!(notes.before["card"].findings, 1);
        assert_eq!(notes.after["card"].findings, 0);
        assert_eq!(notes.after["email"].findings, 3);
        let human = describe_changes(&changes);
        assert!(human.contains("0 new / 新規, 1 gone / 消滅, 2 changed"));
        assert!(human.contains("notes.txt: card 1 → 0, email 2 → 3"));
        assert!(human.contains("gone       db!customers [電話]"));
    }

    /// A card-only run after a full one: the e-mail and phone locations it
    /// did not look for are neither gone nor changed; a card that went is.
    #[test]
    fn runs_for_other_categories_compare_on_the_common_ones() {
        let full = discovery();
        let text = "連絡先 c@example.com\nカード番号 4532015112830366\n";
        let first = inventory(
            &full,
            &[[Some("a@example.com"), Some("090-1234-5678")]],
            text,
            None,
        );
        let cards = Discovery::new(
            Scanner::with_options(
                key::throwaway(),
                crate::ScanOptions::default().categories([Category::Card].into_iter().collect()),
            ),
            Limits::default(),
        );
        let card_only = |text: &str, previous: &Inventory| {
            let mut b = InventoryBuilder::default();
            cards.scan_reader("notes.txt", &mut text.as_bytes(), &mut |r| b.add(&r));
            let parameters = Parameters {
                categories: vec!["card".into()],
                ..Parameters::default()
            };
            b.finish("t".into(), parameters, Some(previous))
        };
        let same = card_only(text, &first).changes.expect("changes");
        assert!(!same.same_parameters);
        assert!(same.is_empty(), "{same:?}");
        let gone = card_only("連絡先 c@example.com\n", &first)
            .changes
            .expect("changes");
        assert_eq!(
            gone.gone,
            vec![Place {
                path: "notes.txt".into(),
                column: None
            }]
        );
        assert!(gone.changed.is_empty() && gone.new.is_empty(), "{gone:?}");
    }

    #[test]
    fn a_category_counted_zero_is_not_a_change() {
        // The scan_inventory fuzz target checks that a `changed` entry
        // differs: an earlier file naming a category with no findings gave
        // one whose before and after were the same.
        let d = discovery();
        let mut first = inventory(&d, &[[Some("a@example.com"), None]], "", None);
        first.locations[0]
            .categories
            .insert("phone".into(), CategoryCount::default());
        let second = inventory(&d, &[[Some("a@example.com"), None]], "", Some(&first));
        let changes = second.changes.expect("changes");
        assert!(changes.is_empty(), "{changes:?}");
        assert!(describe_changes(&changes).contains("0 changed"));
    }

    /// An earlier inventory edited by hand to hold a card number in a name:
    /// read back masked, so the changes printed and written never show it.
    #[test]
    fn names_read_from_an_earlier_inventory_are_masked() {
        let d = discovery();
        let mut edited = inventory(&d, &[], "カード番号 4532015112830366\n", None);
        edited.locations[0].path = "orders-4532015112830366.txt".into();
        edited.locations[0].column = Some("4532 0151 1283 0366\u{1b}[2J".into());
        let read = Inventory::parse(&edited.to_json()).expect("parses");
        let json = String::from_utf8_lossy(&read.to_json()).into_owned();
        assert!(
            !json.contains("4532015112830366") && !json.contains("4532 0151 1283 0366"),
            "{json}"
        );
        assert_eq!(
            Inventory::parse(&read.to_json()).expect("parses"),
            read,
            "masking twice changes nothing"
        );
        let later = inventory(&d, &[], "", Some(&read));
        let changes = later.changes.expect("changes");
        let printed = describe_changes(&changes);
        assert_eq!(changes.gone.len(), 1);
        assert!(
            !printed.contains("4532015112830366")
                && !printed.contains("4532 0151 1283 0366")
                && !printed.contains('\u{1b}'),
            "{printed}"
        );
    }

    /// An earlier inventory holding `locations` (names only) and a later
    /// one that did not fully scan `incomplete`.
    fn diff_of_names(locations: &[String], incomplete: &[String]) -> Changes {
        let mut before = InventoryBuilder::default().finish("t".into(), Parameters::default(), None);
        before.locations = locations
            .iter()
            .map(|path| Location {
                path: path.clone(),
                column: None,
                kind: "text".into(),
                findings: 1,
                records: 1,
                categories: BTreeMap::from([("email".into(), CategoryCount::default())]),
            })
            .collect();
        let mut now = InventoryBuilder::default().finish("t".into(), Parameters::default(), None);
        now.incomplete = incomplete
            .iter()
            .map(|path| Incomplete {
                path: path.clone(),
                status: "partial".into(),
                reason: "r".into(),
            })
            .collect();
        now.diff(&before)
    }

    /// [`Unscanned::holds`] answers as the check it replaced, which compared
    /// each location with every incomplete object.
    #[test]
    fn the_incomplete_index_answers_as_a_scan_of_every_incomplete_object() {
        fn by_scan(incomplete: &[&str], path: &str) -> bool {
            incomplete.iter().any(|p| {
                path == *p
                    || path
                        .strip_prefix(p)
                        .is_some_and(|rest| rest.starts_with(['!', '#']))
            })
        }
        let incomplete = [
            "a.zip",
            "b.zip!inner.zip",
            "c.pdf#",
            "d.tar!",
            "",
            "売上.xlsx",
            "db!public.orders",
            "e.zip!x#y",
        ];
        let paths = [
            "a.zip",
            "a.zip!b.csv",
            "a.zip!b.zip!c.csv",
            "a.zip#page-2",
            "a.zipx",
            "a.zi",
            "a.zip.bak!b.csv",
            "x/a.zip!b.csv",
            "b.zip",
            "b.zip!inner.zip",
            "b.zip!inner.zip!deep.csv",
            "b.zip!inner.zip2!deep.csv",
            "b.zip!other.csv",
            "c.pdf#",
            "c.pdf#3",
            "c.pdf##3",
            "c.pdf!3",
            "d.tar!!m",
            "d.tar!m",
            "d.tar",
            "!leading",
            "#leading",
            "plain",
            "売上.xlsx!シート1",
            "売上.xlsx",
            "売上.xlsx.csv",
            "db!public.orders",
            "db!public.orders_archive",
            "db!public",
            "e.zip!x#y!z",
            "e.zip!x#yz",
            "e.zip!x",
        ];
        let index = Unscanned(incomplete.iter().copied().collect());
        for path in paths {
            assert_eq!(index.holds(path), by_scan(&incomplete, path), "{path}");
        }
        // And through the diff, which lists each location once, in order.
        let mut sorted = paths;
        sorted.sort_unstable();
        let (unverified, gone): (Vec<&str>, Vec<&str>) =
            sorted.into_iter().partition(|p| by_scan(&incomplete, p));
        assert!(unverified.contains(&"a.zip!b.zip!c.csv") && gone.contains(&"a.zipx"));
        let changes = diff_of_names(&owned(&paths), &owned(&incomplete));
        assert_eq!(names(&changes.unverified), unverified);
        assert_eq!(names(&changes.gone), gone);
    }

    fn owned(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    fn names(places: &[Place]) -> Vec<&str> {
        places.iter().map(|p| p.path.as_str()).collect()
    }

    /// 50,000 locations gone and 50,000 incomplete objects: the members of
    /// the incomplete archives (every other location) are unverified.
    #[test]
    fn a_large_diff_tells_every_location_apart() {
        let n = 50_000;
        let member = |i: usize| format!("exports/{i}.zip!{i}.csv");
        let locations: Vec<String> = (0..n).map(member).collect();
        let incomplete: Vec<String> = (0..n).map(|i| format!("exports/{}.zip", 2 * i)).collect();
        let changes = diff_of_names(&locations, &incomplete);
        let mut expected: Vec<String> = (0..n).step_by(2).map(member).collect();
        expected.sort_unstable();
        assert_eq!(names(&changes.unverified), expected);
        assert_eq!(changes.gone.len(), n - expected.len());
    }

    #[test]
    fn absent_from_an_incomplete_object_is_unverified_not_gone() {
        let d = discovery();
        let first = inventory(&d, &[[Some("a@example.com"), None]], "", None);
        let mut b = InventoryBuilder::default();
        b.add(&ObjectReport::skipped_table(
            "db!customers".into(),
            "no SELECT privilege",
        ));
        let second = b.finish("t".into(), Parameters::default(), Some(&first));
        let changes = second.changes.expect("changes");
        assert!(changes.gone.is_empty());
        assert_eq!(changes.unverified.len(), 1);
        assert_eq!(second.incomplete[0].status, "skipped");
    }
}
