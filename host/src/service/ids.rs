//! Id lists of the batch endpoints: capped, de-duplicated in linear time,
//! and named briefly when some are unknown.

use std::collections::HashSet;

use super::Error;

/// As many ids as targets per credential: a batch is an operator's
/// selection, not a bulk export.
pub const MAX_IDS: usize = 1000;

/// How many unknown ids an error names before it only counts the rest.
const NAMED_IDS: usize = 10;

/// The ids once each, in the order first given.
pub fn distinct(ids: Vec<i64>) -> Result<Vec<i64>, Error> {
    if ids.len() > MAX_IDS {
        return Err(Error::IllegalArgument(format!(
            "credential_id_list holds {} ids, at most {MAX_IDS} are allowed",
            ids.len()
        )));
    }
    let mut seen = HashSet::with_capacity(ids.len());
    Ok(ids.into_iter().filter(|id| seen.insert(*id)).collect())
}

/// "1, 2, 3" or "1, 2, …, 10 and 5 more".
pub fn name_some(ids: &[i64]) -> String {
    let named: Vec<String> = ids.iter().take(NAMED_IDS).map(i64::to_string).collect();
    match ids.len().saturating_sub(NAMED_IDS) {
        0 => named.join(", "),
        more => format!("{} and {more} more", named.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_first_occurrences_and_caps() {
        assert_eq!(distinct(vec![3, 1, 3, 2, 1]).unwrap(), vec![3, 1, 2]);
        assert!(distinct(vec![1; MAX_IDS]).is_ok());
        assert!(matches!(
            distinct(vec![1; MAX_IDS + 1]),
            Err(Error::IllegalArgument(_))
        ));
    }

    #[test]
    fn names_a_few_then_counts() {
        assert_eq!(name_some(&[1, 2]), "1, 2");
        let many: Vec<i64> = (1..=25).collect();
        assert_eq!(
            name_some(&many),
            "1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and 15 more"
        );
    }
}
