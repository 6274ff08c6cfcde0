//! The answer a group request gives once its tasks are done: the group (created, read or
//! changed), a list page, or no content, with the `Warning` of changes left out; or the
//! account of a create that was undone.

use crate::drupal::groups::{Member, Term};
use crate::flows::discovery;
use crate::flows::groups::changes::Undo;
use crate::flows::groups::protection::{left_out_warning, LeftOut};
use crate::flows::groups::task::GroupAnswer;
use crate::http::{scim_json, Response, Step};
use crate::scim::error::ScimError;
use crate::scim::projection::Projection;
use serde_json::Value;

/// What the answer is to look like.
#[derive(Debug)]
pub(crate) struct AnswerShape {
    pub(crate) kind: GroupAnswer,
    pub(crate) base_url: String,
    pub(crate) projection: Projection,
    /// The answer shows members (`attributes`/`excludedAttributes` allow them).
    pub(crate) want_members: bool,
    /// Of a list: the number of matches, and the index of the first one shown.
    pub(crate) total: usize,
    pub(crate) start_index: usize,
}

impl AnswerShape {
    pub(crate) fn new(base_url: &str, projection: Projection, kind: GroupAnswer) -> Self {
        AnswerShape {
            kind,
            base_url: base_url.to_string(),
            want_members: projection.wants("members"),
            projection,
            total: 0,
            start_index: 1,
        }
    }

    /// The answer, from the terms and members at hand.
    pub(crate) fn respond(
        &self,
        terms: &[Term],
        members: &[Option<Vec<Member>>],
        undo: Option<&Undo>,
        left_out: &[LeftOut],
    ) -> Step {
        if let Some(undo) = undo {
            let name = terms.first().map(|t| t.name.as_str()).unwrap_or("");
            return Step::Respond(
                ScimError::bad_gateway(format!(
                    "Adding the members of the new group `{name}` failed ({}), so the group was not created: the {} member(s) that may have been added were removed again and the group deleted. Sending the same request again is safe.",
                    undo.failures.join("; "),
                    undo.added.len()
                ))
                .into_response(),
            );
        }
        let warning = left_out_warning(left_out);
        match self.kind {
            GroupAnswer::NoContent => Step::Respond(Response {
                status: 204,
                headers: warning.into_iter().collect(),
                body: Vec::new(),
            }),
            GroupAnswer::Created | GroupAnswer::Resource => self.one_group(terms, members, warning),
            GroupAnswer::List => {
                let resources: Vec<Value> = terms
                    .iter()
                    .enumerate()
                    .map(|(i, t)| Value::Object(self.resource(t, members.get(i))))
                    .collect();
                scim_json(
                    200,
                    &discovery::list_response(resources, self.total, self.start_index),
                    vec![],
                )
            }
        }
    }

    fn one_group(
        &self,
        terms: &[Term],
        members: &[Option<Vec<Member>>],
        warning: Option<(String, String)>,
    ) -> Step {
        let Some(term) = terms.first() else {
            return Step::Respond(ScimError::not_found("Group not found.").into_response());
        };
        let resource = self.resource(term, members.first());
        let mut headers = vec![("etag".to_string(), term.version())];
        headers.extend(warning);
        let status = if self.kind == GroupAnswer::Created {
            headers.push((
                "location".to_string(),
                format!("{}/Groups/{}", self.base_url, term.uuid),
            ));
            201
        } else {
            200
        };
        scim_json(status, &Value::Object(resource), headers)
    }

    /// One group as SCIM shows it (its members when the answer shows them).
    fn resource(
        &self,
        term: &Term,
        members: Option<&Option<Vec<Member>>>,
    ) -> serde_json::Map<String, Value> {
        let members = if self.want_members {
            members.cloned().flatten()
        } else {
            None
        };
        let mut r = term.to_scim(&self.base_url, members.as_deref());
        self.projection.apply(&mut r);
        r
    }
}
