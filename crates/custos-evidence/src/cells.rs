//! CSV cells safe to open in a spreadsheet.
//!
//! Spreadsheets run a cell that begins with `=`, `+`, `-` or `@` as a
//! formula (and a tab or carriage return first can hide one), so such a
//! cell gets a leading single quote: the text stays readable and is never
//! run. Holder names and ids come from attackers; amounts are written by
//! us and never negative, so no real value is changed by this. Quoting of
//! commas, quotes and line breaks is the `csv` crate's.

/// `value`, made inert for spreadsheets.
pub fn neutralise(value: &str) -> std::borrow::Cow<'_, str> {
    match value.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{value}").into(),
        _ => value.into(),
    }
}

/// Writes one record with every cell neutralised.
pub fn write_row<W: std::io::Write>(
    writer: &mut csv::Writer<W>,
    cells: &[&str],
) -> Result<(), csv::Error> {
    writer.write_record(cells.iter().map(|c| neutralise(c).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_starts_are_quoted_and_other_text_is_not() {
        for bad in ["=1+1", "+33", "-2", "@SUM(A1)", "\tx", "\r=x"] {
            assert_eq!(neutralise(bad), format!("'{bad}"));
        }
        for good in ["Jane", "1200", "", "a=b", "Ωμέγα", "'quoted"] {
            assert_eq!(neutralise(good), good);
        }
    }

    #[test]
    fn quotes_commas_newlines_and_non_latin_text_round_trip() {
        let cells = [
            "Smith, \"Jane\"",
            "line one\nline two",
            "Мария Иванова",
            "王小明",
            "مريم",
            "=HYPERLINK(\"x\")",
        ];
        let mut writer = csv::Writer::from_writer(Vec::new());
        write_row(&mut writer, &cells).expect("writing to memory");
        let bytes = writer.into_inner().expect("flushing to memory");
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(bytes.as_slice());
        let record = reader
            .records()
            .next()
            .expect("one record")
            .expect("a valid record");
        let read: Vec<&str> = record.iter().collect();
        assert_eq!(&read[..5], &cells[..5]);
        assert_eq!(read[5], "'=HYPERLINK(\"x\")");
    }
}
