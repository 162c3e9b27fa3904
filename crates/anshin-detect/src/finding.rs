//! What a scan reports: category, confidence, masked value, keyed fingerprint
//! and locator. Nothing here can hold a raw matched value: the masked form is
//! built from the digits at detection time and the digits are then wiped.

use std::fmt;

/// What kind of personal or card data a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Category {
    /// A payment card number (PAN).
    Card,
    /// A card security code (CVV/CVC/CID) next to its keyword. Storing one after
    /// authorisation is forbidden (PCI DSS 3.3.1.2), so it is a finding of its own.
    SecurityCode,
    /// A card expiry date near card context.
    Expiry,
    /// An e-mail address.
    Email,
    /// A Japanese telephone number.
    Phone,
    /// A Japanese postal code.
    PostalCode,
    /// A My Number (個人番号).
    MyNumber,
    /// A corporate number (法人番号) or invoice registration number. Public data,
    /// reported so that an inventory can tell it from a card or My Number.
    CorporateNumber,
    /// A Japanese passport number.
    Passport,
    /// A residence card (在留カード) number.
    ResidenceCard,
    /// A bank account number next to bank context.
    BankAccount,
    /// A person's name, found by its label or column header.
    Name,
    /// A postal address, found by its label or column header.
    Address,
}

impl Category {
    /// Every category, in declaration order.
    pub const ALL: [Category; 13] = [
        Self::Card,
        Self::SecurityCode,
        Self::Expiry,
        Self::Email,
        Self::Phone,
        Self::PostalCode,
        Self::MyNumber,
        Self::CorporateNumber,
        Self::Passport,
        Self::ResidenceCard,
        Self::BankAccount,
        Self::Name,
        Self::Address,
    ];

    /// Stable snake_case name, used in output formats and `--fail-on`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Card => "card",
            Self::SecurityCode => "cvc",
            Self::Expiry => "expiry",
            Self::Email => "email",
            Self::Phone => "phone",
            Self::PostalCode => "postal_code",
            Self::MyNumber => "my_number",
            Self::CorporateNumber => "corporate_number",
            Self::Passport => "passport",
            Self::ResidenceCard => "residence_card",
            Self::BankAccount => "bank_account",
            Self::Name => "name",
            Self::Address => "address",
        }
    }

    /// Its place in [`Category::ALL`], for counting in an array.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The inverse of [`Category::as_str`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// The fingerprint domain. Cards use `"pan"`, the same domain the vault
    /// uses, so that with the tenant's fingerprint key a discovered card can be
    /// matched to a vaulted one without decrypting anything.
    pub fn fingerprint_purpose(self) -> &'static str {
        match self {
            Self::Card => "pan",
            other => other.as_str(),
        }
    }
}

/// A set of categories: what a scan reports (`anshin scan --only`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Categories(u16);

impl Categories {
    /// Every category.
    pub const ALL: Categories = Categories((1 << Category::ALL.len()) - 1);

    /// No category.
    pub const NONE: Categories = Categories(0);

    /// Whether `category` is in the set.
    #[inline]
    pub fn contains(self, category: Category) -> bool {
        self.0 & (1 << category.index()) != 0
    }

    /// The set with `category` added.
    pub fn with(self, category: Category) -> Self {
        Self(self.0 | 1 << category.index())
    }

    /// Whether every category is in the set.
    pub fn is_all(self) -> bool {
        self == Self::ALL
    }

    /// The categories in the set, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = Category> {
        Category::ALL.into_iter().filter(move |&c| self.contains(c))
    }
}

impl FromIterator<Category> for Categories {
    fn from_iter<I: IntoIterator<Item = Category>>(iter: I) -> Self {
        iter.into_iter().fold(Self::NONE, Self::with)
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How sure the detector is. Numeric detectors reach `High` only with a
/// keyword or column header nearby: a check digit alone passes one random
/// string in ten.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Confidence {
    /// Format and check digit only, or weak evidence against.
    Low,
    /// Format, check digit and a distinctive shape (brand prefix, grouping).
    Medium,
    /// All of the above plus a label, keyword or column header.
    High,
}

impl Confidence {
    /// Stable lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}

impl fmt::Display for Confidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A keyed HMAC-SHA-256 fingerprint of the normalised value. Without the
/// tenant's key it confirms nothing, so it is safe to print and store.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// Lower-case hex digits, from a table rather than a formatter call per
    /// byte: reports write one per finding, and on dense files (75 findings
    /// in 3 KB) `write!` per byte took a sixth of a scan's instructions.
    pub fn hex(&self) -> [u8; 64] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 64];
        for (pair, b) in out.chunks_exact_mut(2).zip(self.0) {
            pair[0] = DIGITS[usize::from(b >> 4)];
            pair[1] = DIGITS[usize::from(b & 0x0f)];
        }
        out
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        self.hex().iter().copied().map(char::from).collect()
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", self.to_hex())
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Where a finding is, precisely enough for breach response to find the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locator {
    /// Byte offset of the match in the *original* input (before decoding).
    pub byte_offset: usize,
    /// Length of the match in the original input, in bytes.
    pub byte_len: usize,
    /// 1-based line in the decoded text.
    pub line: usize,
    /// 1-based column in the decoded text, in characters (Unicode scalar values).
    pub column: usize,
    /// Row and field for CSV/TSV scans.
    pub record: Option<RecordLocator>,
    /// 1-based page of a PDF document or slide of a presentation; line,
    /// column and byte offset are then positions in that page's extracted
    /// text. Set by the document readers.
    pub page: Option<usize>,
}

/// A CSV/TSV cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordLocator {
    /// 1-based record number in the file, header included (so it equals the
    /// spreadsheet row when there are no multi-line cells).
    pub row: usize,
    /// 1-based field number.
    pub field: usize,
    /// The column header, when the file has a recognised header row. Headers
    /// are column names, not values; they are cut to 64 characters.
    pub header: Option<String>,
    /// The row's key, for database tables that have a primary key
    /// (`id=42`, `shop=s1, no=7`): how the breach response finds the record.
    /// Key values the detectors flag are masked as findings are. `None`
    /// elsewhere (then `row` is the record's ordinal).
    pub key: Option<String>,
    /// The table of a SQL dump the row belongs to (then `row` counts the
    /// table's data rows from 1 and `header` is the column name). Set by the
    /// dump reader.
    pub table: Option<String>,
}

/// One piece of personal or card data found in the input. It carries no raw
/// value: only the masked form and a keyed fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What was found.
    pub category: Category,
    /// How sure the detector is.
    pub confidence: Confidence,
    /// A sub-kind: the card brand (`"visa"`), the phone kind (`"mobile"`),
    /// `"invoice"` for T-prefixed registration numbers.
    pub kind: Option<&'static str>,
    /// The value is a well-known public test value (a sandbox card number).
    pub test_value: bool,
    /// Masked form, e.g. `4111 11•• •••• 1111`.
    pub masked: String,
    /// Keyed fingerprint of the normalised value, for deduplication,
    /// allow-lists and matching against the vault.
    pub fingerprint: Fingerprint,
    /// Where it is.
    pub locator: Locator,
}

const BULLET: char = '•';

/// Masks ASCII digits keeping the first `keep_front` and last `keep_back`
/// digits, grouped as `groups` (digit counts) separated by `sep`.
pub(crate) fn mask_digits(
    digits: &[u8],
    keep_front: usize,
    keep_back: usize,
    groups: &[usize],
    sep: char,
) -> String {
    let n = digits.len();
    let mut out = String::with_capacity(n * 3 + groups.len());
    let mut boundaries = groups.iter().scan(0usize, |acc, g| {
        *acc += g;
        Some(*acc)
    });
    let mut next_boundary = boundaries.next();
    for (i, &d) in digits.iter().enumerate() {
        if next_boundary == Some(i) {
            out.push(sep);
            next_boundary = boundaries.next();
        }
        if i < keep_front || i + keep_back >= n {
            out.push(char::from(d));
        } else {
            out.push(BULLET);
        }
    }
    out
}

/// The card masking rule: at most the first six and last four digits (PCI
/// DSS 3.4.1), grouped the way the brand prints it.
pub(crate) fn mask_card(digits: &[u8]) -> String {
    let groups: &[usize] = match digits.len() {
        15 => &[4, 6, 5],
        14 => &[4, 6, 4],
        _ => &[4, 4, 4, 4, 4],
    };
    let keep_front = if digits.len() >= 14 { 6 } else { 4 };
    mask_digits(digits, keep_front, 4, groups, ' ')
}

/// Bullets for every character of a text value, capped so the mask does not
/// reveal the exact length of long values.
pub(crate) fn mask_text(value: &str) -> String {
    let n = value.chars().count().clamp(1, 8);
    std::iter::repeat_n(BULLET, n).collect()
}

/// E-mail: first character of the local part, the domain in clear (it tells
/// the inventory which providers are involved).
pub(crate) fn mask_email(local_first: char, domain: &str) -> String {
    format!("{local_first}•••@{domain}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_category_indexes_its_place_in_all() {
        for (i, c) in Category::ALL.into_iter().enumerate() {
            assert_eq!(c.index(), i, "{c}");
        }
    }

    #[test]
    fn fingerprint_hex_is_two_lower_case_digits_per_byte() {
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37) ^ 0xA5;
        }
        for fp in [Fingerprint(bytes), Fingerprint([0; 32]), Fingerprint([0xff; 32])] {
            let expected: String = fp.0.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(fp.to_hex(), expected);
        }
    }

    #[test]
    fn card_masks_keep_bin_and_last_four() {
        assert_eq!(mask_card(b"4111111111111111"), "4111 11•• •••• 1111");
        assert_eq!(mask_card(b"378282246310005"), "3782 82•••• •0005");
        assert_eq!(mask_card(b"30569309025904"), "3056 93•••• 5904");
        assert_eq!(mask_card(b"4222222222222"), "4222 •••• •222 2");
    }

    #[test]
    fn generic_digit_masks() {
        assert_eq!(
            mask_digits(b"621498320257", 0, 4, &[4, 4, 4], ' '),
            "•••• •••• 0257"
        );
        assert_eq!(
            mask_digits(b"09012345678", 3, 4, &[3, 4, 4], '-'),
            "090-••••-5678"
        );
        assert_eq!(mask_text("山田太郎"), "••••");
        assert_eq!(mask_text("とても長いお名前の人でございます"), "••••••••");
        assert_eq!(mask_email('t', "example.com"), "t•••@example.com");
    }

    #[test]
    fn category_names_round_trip() {
        for c in Category::ALL {
            assert_eq!(Category::from_name(c.as_str()), Some(c));
        }
        assert_eq!(Category::Card.fingerprint_purpose(), "pan");
        assert!(Confidence::High > Confidence::Medium && Confidence::Medium > Confidence::Low);
    }

    #[test]
    fn fingerprint_prints_hex_only() {
        let fp = Fingerprint([0xab; 32]);
        assert_eq!(fp.to_string().len(), 64);
        assert!(format!("{fp:?}").starts_with("Fingerprint(abab"));
    }
}
