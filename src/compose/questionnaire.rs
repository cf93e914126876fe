//! R5 Questionnaire generated from a form's schema, and QuestionnaireResponse → form JSON.

use super::FormDef;
use crate::error::AppError;
use serde_json::{json, Value};

pub fn questionnaire(def: &FormDef, base: &str) -> Value {
    json!({"resourceType": "Questionnaire", "url": format!("{base}/forms/{}/Questionnaire", def.form), "status": "active"})
}

pub fn response_to_input(_def: &FormDef, _qr: &Value) -> Result<Value, AppError> {
    Err(AppError::BadRequest("QuestionnaireResponse input is not implemented yet".into()))
}
