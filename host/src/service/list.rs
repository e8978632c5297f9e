//! The list endpoint: filters, sort and page, read from the store's indexes.

use super::{CredentialView, Error, ListView, PageView, Service};
use crate::budget::{Budget, Client, Slot};
use crate::store::{ListQuery, SortField};

/// A page larger than this may hold the whole table (the obshell SDK asks
/// for 2^63-1 rows on every list): it is built only in one of few places.
const LARGE_PAGE: i64 = 1_000;

/// Places for building lists that may read the whole table: a large page
/// (its rows read, their views and their JSON are made in one of these), a
/// `key_word` search (every row's search terms scanned), or a page deep
/// into the table (every row before it skipped). However many of these
/// clients send, at most this many are being built at a time, one
/// client's at most one of them; the others wait up to five seconds, then
/// get a 503. (The answer written out and on its way is bounded by the
/// connection caps, not by this.)
pub(super) fn large_lists() -> Budget {
    Budget::new(
        "list",
        "place for a list that reads the whole table",
        2,
        1,
        std::time::Duration::from_secs(5),
    )
}

/// A list request, decoded but not yet normalised.
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    pub credential_id: i64,
    pub target_type: String,
    pub key_word: String,
    pub page: i64,
    pub page_size: i64,
    pub sort: String,
    pub sort_order: String,
}

const SORT_FIELDS: &str =
    "id, credential_id, name, access_target, target_type, create_time, update_time";

fn sort_field(name: &str) -> Result<Option<SortField>, Error> {
    Ok(Some(match name.to_ascii_lowercase().as_str() {
        "" => return Ok(None),
        "id" | "credential_id" => SortField::Id,
        "name" => SortField::Name,
        "access_target" | "target_type" => SortField::TargetType,
        "create_time" => SortField::CreateTime,
        "update_time" => SortField::UpdateTime,
        _ => {
            return Err(Error::IllegalArgument(format!(
                "unsupported sort field '{name}', use one of: {SORT_FIELDS}"
            )));
        }
    }))
}

fn descending(order: &str) -> Result<Option<bool>, Error> {
    match order.to_ascii_lowercase().as_str() {
        "" => Ok(None),
        "asc" => Ok(Some(false)),
        "desc" => Ok(Some(true)),
        _ => Err(Error::IllegalArgument(format!(
            "unsupported sort_order '{order}', use asc or desc"
        ))),
    }
}

/// Whether building `req`'s page may cost in proportion to the table
/// rather than to the page: a large or deep page, a search, or a filter by
/// type (every id of the type is gathered, and rows of a rare type are
/// looked for through the whole sort order), unless it names one id.
fn reads_the_table(req: &ListRequest) -> bool {
    let (page, size) = req.page_and_size();
    let skipped = (page - 1).saturating_mul(size);
    let by_type = !req.target_type.is_empty() && req.credential_id <= 0;
    req.page_size > LARGE_PAGE || !req.key_word.is_empty() || skipped > LARGE_PAGE as u64 || by_type
}

impl ListRequest {
    /// The page asked for and its size, obshell's defaults (1 and 10) in
    /// place of what is not positive.
    fn page_and_size(&self) -> (u64, u64) {
        let page = if self.page <= 0 { 1 } else { self.page as u64 };
        let size = if self.page_size <= 0 {
            10
        } else {
            self.page_size as u64
        };
        (page, size)
    }
}

impl Service {
    /// `req`'s page for `client`, and, if it may be large, its place among
    /// large lists: held from before its rows are read (even should the
    /// request be dropped meanwhile) until the caller lets it go, once the
    /// page is written as JSON.
    pub async fn list_for(
        &self,
        req: ListRequest,
        client: &Client,
    ) -> Result<(ListView, Option<Slot>), Error> {
        let place = if reads_the_table(&req) {
            let slot = (self.large_lists.acquire(client).await)
                .map_err(|busy| Error::Unavailable(format!("{busy}; retry later")))?;
            Some(slot)
        } else {
            None
        };
        self.list_holding(req, place).await
    }

    pub async fn list(&self, req: ListRequest) -> Result<ListView, Error> {
        self.list_holding(req, None).await.map(|(view, _)| view)
    }

    async fn list_holding(
        &self,
        req: ListRequest,
        place: Option<Slot>,
    ) -> Result<(ListView, Option<Slot>), Error> {
        let (page, size) = req.page_and_size();
        let field = sort_field(&req.sort)?;
        let order = descending(&req.sort_order)?;
        let (sort, descending) = match field {
            // obshell's default, whatever `sort_order` says: newest first.
            None => (SortField::Id, true),
            Some(field) => (field, order.unwrap_or(false)),
        };
        let query = ListQuery {
            credential_id: (req.credential_id > 0).then_some(req.credential_id as u64),
            target_type: (!req.target_type.is_empty()).then_some(req.target_type),
            key_word: (!req.key_word.is_empty()).then_some(req.key_word),
            sort,
            descending,
            offset: (page - 1).saturating_mul(size),
            // Never more than there are rows, however large the page asked for.
            limit: size,
        };
        let (result, place) = self
            .store(move |s| s.list(&query).map(|result| (result, place)))
            .await?;
        let view = ListView {
            contents: result.records.iter().map(CredentialView::of).collect(),
            page: PageView {
                total_elements: result.total,
                total_pages: result.total.div_ceil(size),
                size,
                number: page,
            },
        };
        Ok((view, place))
    }
}
