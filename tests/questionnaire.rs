//! The generated Questionnaire and QuestionnaireResponse input.

mod common;

use common::*;
use hujjat::compose::{questionnaire, Composer};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn link_ids(items: &Value, out: &mut Vec<String>) {
    for it in items.as_array().into_iter().flatten() {
        out.push(it["linkId"].as_str().unwrap().to_string());
        link_ids(&it["item"], out);
    }
}

#[test]
fn questionnaire_covers_every_field_with_translations() {
    let c = Composer::builtin().unwrap();
    for f in ["003", "096"] {
        let def = c.get(f).unwrap();
        let q = questionnaire::questionnaire(def, "http://x");
        assert_eq!(q["resourceType"], "Questionnaire");
        let mut ids = Vec::new();
        link_ids(&q["item"], &mut ids);
        // every leaf field of the schema is answerable
        for (path, field) in &def.labels.fields {
            let is_leaf = field.kind != hujjat::compose::labels::Kind::Object && !path.ends_with("[]");
            if is_leaf {
                assert!(ids.contains(path), "form {f}: no item for {path}");
            }
        }
        let admission = ids.iter().any(|i| i.ends_with("admissionDateTime"));
        assert!(admission);
        let s = q.to_string();
        assert!(s.contains("\"valueCode\":\"ru\""), "Russian translations present");
        assert!(s.contains("\"answerOption\""), "enums become answer options");
    }
}

#[test]
fn questionnaire_response_round_trips_to_the_same_input() {
    let c = Composer::builtin().unwrap();
    for (f, k) in [("003", "example"), ("003", "minimal"), ("096", "example"), ("096", "minimal")] {
        let def = c.get(f).unwrap();
        let input = example(f, k);
        let qr = questionnaire::input_to_response(def, &input, "http://h");
        let back = questionnaire::response_to_input(def, &qr).unwrap();
        assert_eq!(back, input, "form {f} {k}");
    }
}

#[test]
fn questionnaire_response_errors_name_the_item() {
    let c = Composer::builtin().unwrap();
    let def = c.get("003").unwrap();
    let qr = json!({"resourceType": "QuestionnaireResponse", "questionnaire": "http://h/forms/096/Questionnaire",
        "item": [{"linkId": "nonsense", "answer": [{"valueString": "x"}]}, {"answer": []}]});
    let err = questionnaire::response_to_input(def, &qr).unwrap_err();
    let exprs: Vec<String> = err.issues().into_iter().filter_map(|i| i.expression).collect();
    assert!(exprs.contains(&"QuestionnaireResponse.questionnaire".to_string()), "{exprs:?}");
    assert!(exprs.contains(&"QuestionnaireResponse.item[0].linkId".to_string()), "{exprs:?}");
    assert!(exprs.contains(&"QuestionnaireResponse.item[1].linkId".to_string()), "{exprs:?}");
}

#[tokio::test]
async fn post_a_questionnaire_response() {
    let app = TestApp::spawn().await;
    let q: Value = app.http.get(app.url("/forms/096/Questionnaire")).send().await.unwrap().json().await.unwrap();
    let def = app.state.docs.composer.get("096").unwrap();
    let base = q["url"].as_str().unwrap().trim_end_matches("/forms/096/Questionnaire").to_string();
    let qr = questionnaire::input_to_response(def, &example("096", "example"), &base);
    let r = app
        .http
        .post(app.url("/forms/096/documents"))
        .basic_auth(DEMO.0, Some(DEMO.1))
        .header("content-type", "application/fhir+json")
        .body(serde_json::to_vec(&qr).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["entry"][0]["resource"]["category"][0]["coding"][0]["code"], "form-096");
    // a wrong answer type surfaces as a schema error on the form field
    let mut bad = qr.clone();
    let items = bad["item"].as_array_mut().unwrap();
    let patient = items.iter_mut().find(|i| i["linkId"] == "patient").unwrap();
    let pinfl = patient["item"].as_array_mut().unwrap().iter_mut().find(|i| i["linkId"] == "patient.pinfl").unwrap();
    pinfl["answer"] = json!([{"valueString": "12"}]);
    let r = app
        .http
        .post(app.url("/forms/096/documents"))
        .basic_auth(DEMO.0, Some(DEMO.1))
        .header("content-type", "application/fhir+json")
        .body(serde_json::to_vec(&bad).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let oo: Value = r.json().await.unwrap();
    assert!(oo.to_string().contains("patient.pinfl"), "{oo}");
}
