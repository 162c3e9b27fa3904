//! Tables: rows of named cells (a database table read by the caller), scanned
//! cell by cell with the column name as each cell's header, exactly as a CSV
//! column is. This crate does no database I/O: the caller streams the rows in
//! ([`TableScan::row`]) and gets one [`ObjectReport`] per table.

use anshin_detect::ColumnContext;

use crate::{Discovery, Finding, ObjectKind, ObjectReport, Status, mask_card_numbers};

/// One column of a table, as the caller reads it.
#[derive(Debug, Clone)]
pub struct TableColumn {
    /// The column name: the header its cells are scanned under.
    pub name: String,
    /// Whether its cells are scanned (text-like and numeric columns); others
    /// are passed as `None`.
    pub scan: bool,
    /// Whether it is part of the primary key, in key order.
    pub key: bool,
}

impl TableColumn {
    /// A scanned column that is not part of the key.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            scan: true,
            key: false,
        }
    }

    /// Sets [`TableColumn::scan`].
    pub fn scan(mut self, scan: bool) -> Self {
        self.scan = scan;
        self
    }

    /// Sets [`TableColumn::key`].
    pub fn key(mut self, key: bool) -> Self {
        self.key = key;
        self
    }
}

struct Column {
    context: ColumnContext,
    /// The name as printed: `None` when the detectors find something in it.
    header: Option<String>,
    scan: bool,
    key: bool,
}

/// A table being scanned: feed it rows, then [`TableScan::finish`].
pub struct TableScan<'d> {
    discovery: &'d Discovery,
    report: ObjectReport,
    columns: Vec<Column>,
    rows: usize,
}

impl std::fmt::Debug for TableScan<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableScan")
            .field("path", &self.report.path)
            .field("columns", &self.columns.len())
            .field("rows", &self.rows)
            .finish()
    }
}

impl Discovery {
    /// Starts scanning a table named `path` (for example
    /// `postgres://db:5432/shop!public.customers`) with these columns, in the
    /// order the cells of each row come in.
    pub fn table(&self, path: &str, columns: &[TableColumn]) -> TableScan<'_> {
        let columns = columns
            .iter()
            .map(|c| {
                let name: String = c.name.chars().take(64).collect();
                Column {
                    context: self.scanner.column(&name),
                    header: self.header_is_clean(&name).then_some(name),
                    scan: c.scan,
                    key: c.key,
                }
            })
            .collect();
        TableScan {
            discovery: self,
            report: ObjectReport::new(path.to_owned(), ObjectKind::Table),
            columns,
            rows: 0,
        }
    }
}

impl TableScan<'_> {
    /// Scans the next row: one cell per column (`None` for NULL or a column
    /// that is not scanned). Row numbers count from 1 in the order rows come.
    pub fn row(&mut self, cells: &[Option<&str>]) {
        self.rows += 1;
        let row = self.rows;
        let start = self.report.findings.len();
        let mut bytes = 0;
        for (i, (column, cell)) in self.columns.iter().zip(cells).enumerate() {
            let Some(cell) = cell.filter(|_| column.scan) else {
                continue;
            };
            bytes += cell.len();
            let found =
                self.discovery
                    .scanner
                    .scan_cell(cell, column.context, row, i + 1, column.header.as_deref());
            self.report.findings.extend(found);
        }
        self.discovery.count_bytes(bytes);
        self.report.bytes += bytes as u64;
        if self.report.findings.len() > start {
            let key = self.key(cells);
            for f in &mut self.report.findings[start..] {
                if let Some(record) = &mut f.locator.record {
                    record.key.clone_from(&key);
                }
            }
        }
    }

    /// The row's key as `column=value` pairs, each value masked where the
    /// detectors see personal data in it (at medium confidence or more, test
    /// card numbers included): a customer table keyed by e-mail address must
    /// not print the addresses.
    fn key(&self, cells: &[Option<&str>]) -> Option<String> {
        let mut parts = Vec::new();
        for (i, (column, cell)) in self.columns.iter().zip(cells).enumerate() {
            if !column.key {
                continue;
            }
            let name = column
                .header
                .clone()
                .unwrap_or_else(|| format!("column {}", i + 1));
            let value = match cell {
                None => "NULL".to_owned(),
                Some(v) => quote(&self.mask_key(v, column)),
            };
            parts.push(format!("{name}={value}"));
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }

    fn mask_key(&self, value: &str, column: &Column) -> String {
        let found = self
            .discovery
            .key_check
            .scan_cell(value, column.context, 1, 1, None);
        mask_card_numbers(mask_spans(value, &found))
    }

    /// Marks the table partial (or skipped) with a reason that holds no content.
    pub fn degrade(&mut self, status: Status, reason: impl Into<String>) {
        self.report.degrade(status, reason);
    }

    /// Rows scanned so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Marks the table as cut short by an error: `skipped` if no row was
    /// read, else `partial`.
    pub fn fail(&mut self, reason: impl Into<String>) {
        let status = if self.rows == 0 {
            Status::Skipped
        } else {
            Status::Partial
        };
        self.degrade(status, reason);
    }

    /// The table's report.
    pub fn finish(self) -> ObjectReport {
        self.report
    }
}

/// `value` with each finding's span replaced by its masked form.
fn mask_spans(value: &str, findings: &[Finding]) -> String {
    let mut out = String::with_capacity(value.len());
    let mut at = 0;
    for f in findings {
        let start = f.locator.byte_offset;
        let end = start + f.locator.byte_len;
        if start < at || !value.is_char_boundary(start) || !value.is_char_boundary(end) {
            continue;
        }
        out.push_str(&value[at..start]);
        out.push_str(&f.masked);
        at = end;
    }
    out.push_str(&value[at..]);
    out
}

/// A key value as printed: plain when it is unambiguous, else in double
/// quotes with `"` and `\` escaped (so `a=1, b=2` parses back).
fn quote(value: &str) -> String {
    if !value.is_empty()
        && !value
            .chars()
            .any(|c| matches!(c, ',' | '=' | '"' | '\\') || c.is_whitespace() || c.is_control())
    {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push_str(&c.escape_unicode().to_string()),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The table part of a database path, schema-qualified when there is a schema.
pub fn table_path(database: &str, schema: Option<&str>, table: &str) -> String {
    match schema {
        Some(schema) => format!("{database}!{schema}.{table}"),
        None => format!("{database}!{table}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Limits, Scanner, key};

    fn discovery() -> Discovery {
        Discovery::new(Scanner::new(key::throwaway()), Limits::default())
    }

    #[test]
    fn cells_get_row_column_and_masked_key() {
        let d = discovery();
        let columns = [
            TableColumn::new("email").key(true),
            TableColumn::new("カード番号"),
            TableColumn::new("photo").scan(false),
        ];
        let mut t = d.table("sqlite://shop.db!customers", &columns);
        t.row(&[Some("taro@example.com"), None, None]);
        t.row(&[
            Some("hanako@example.org"),
            Some("4532015112830366"),
            Some("4532015112830366"),
        ]);
        let r = t.finish();
        assert_eq!(r.kind, ObjectKind::Table);
        let cards: Vec<_> = r
            .findings
            .iter()
            .filter(|f| f.category == crate::Category::Card)
            .collect();
        assert_eq!(cards.len(), 1, "the unscanned column is not read");
        let rec = cards[0].locator.record.as_ref().expect("record");
        assert_eq!((rec.row, rec.field), (2, 2));
        assert_eq!(rec.header.as_deref(), Some("カード番号"));
        assert_eq!(rec.key.as_deref(), Some("email=h•••@example.org"));
        // The key column's own values are findings too.
        let emails = r
            .findings
            .iter()
            .filter(|f| f.category == crate::Category::Email)
            .count();
        assert_eq!(emails, 2);
        assert_eq!(
            r.bytes,
            ("taro@example.com".len() + "hanako@example.org".len() + 16) as u64
        );
    }

    #[test]
    fn composite_keys_are_quoted_and_cards_in_keys_masked() {
        let d = discovery();
        let columns = [
            TableColumn::new("shop").key(true),
            TableColumn::new("ref").key(true),
            TableColumn::new("電話番号"),
        ];
        let mut t = d.table("x!orders", &columns);
        t.row(&[Some("s 1"), Some("4532015112830366"), Some("090-1234-5678")]);
        let r = t.finish();
        let key = r.findings[0].locator.record.as_ref().and_then(|r| r.key.clone());
        assert_eq!(key.as_deref(), Some("shop=\"s 1\", ref=\"4532 01•• •••• 0366\""));
    }

    #[test]
    fn plain_ids_stay_readable_even_when_a_check_digit_passes() {
        // 621498320257 passes the My Number check digit: only a label or
        // header makes it one, so as an `id` it is the breach response's handle.
        let d = discovery();
        let mut t = d.table(
            "x!t",
            &[TableColumn::new("id").key(true), TableColumn::new("email")],
        );
        t.row(&[Some("621498320257"), Some("a@example.com")]);
        let mut m = d.table(
            "x!u",
            &[
                TableColumn::new("マイナンバー").key(true),
                TableColumn::new("email"),
            ],
        );
        m.row(&[Some("621498320257"), Some("a@example.com")]);
        let key = |r: &ObjectReport| {
            r.findings
                .last()
                .and_then(|f| f.locator.record.as_ref()?.key.clone())
        };
        assert_eq!(key(&t.finish()).as_deref(), Some("id=621498320257"));
        assert_eq!(
            key(&m.finish()).as_deref(),
            Some("マイナンバー=\"•••• •••• 0257\"")
        );
    }

    #[test]
    fn key_values_quote_only_when_needed() {
        assert_eq!(quote("42"), "42");
        assert_eq!(quote("a,b"), "\"a,b\"");
        assert_eq!(quote("say \"hi\""), "\"say \\\"hi\\\"\"");
        assert_eq!(quote(""), "\"\"");
        assert_eq!(table_path("pg", Some("public"), "t"), "pg!public.t");
    }
}
