//! Markdown tables.

/// A GitHub-flavoured Markdown table built row by row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MdTable {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl MdTable {
    /// A table with the given column headers.
    pub fn new<S: AsRef<str>>(header: &[S]) -> Self {
        Self {
            header: header
                .iter()
                .map(|s| s.as_ref().replace('|', "\\|"))
                .collect(),
            rows: Vec::new(),
        }
    }

    /// Append a row; missing cells are left empty, extra cells are kept (the header is padded).
    pub fn row<S: AsRef<str>>(&mut self, cells: &[S]) -> &mut Self {
        self.rows.push(
            cells
                .iter()
                .map(|s| s.as_ref().replace('|', "\\|"))
                .collect(),
        );
        self
    }

    /// Number of data rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no data rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Render as Markdown (ends with a newline).
    pub fn render(&self) -> String {
        let ncol = self
            .rows
            .iter()
            .map(Vec::len)
            .chain(std::iter::once(self.header.len()))
            .max()
            .unwrap_or(0);
        let line = |cells: &[String]| {
            let mut s = String::from("|");
            for i in 0..ncol {
                s.push(' ');
                s.push_str(cells.get(i).map(String::as_str).unwrap_or(""));
                s.push_str(" |");
            }
            s.push('\n');
            s
        };
        let mut out = line(&self.header);
        out.push('|');
        out.push_str(&"---|".repeat(ncol));
        out.push('\n');
        for r in &self.rows {
            out.push_str(&line(r));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_escapes() {
        let mut t = MdTable::new(&["α", "|x|"]);
        t.row(&["4", "5"]).row(&["a|b"]);
        assert_eq!(
            t.render(),
            "| α | \\|x\\| |\n|---|---|\n| 4 | 5 |\n| a\\|b |  |\n"
        );
        assert_eq!(t.len(), 2);
    }
}
