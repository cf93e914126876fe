//! hujjat: legally signed FHIR R5 clinical documents for Uzbekistan's Digital Health Platform.

pub mod app;
pub mod compose;
pub mod config;
pub mod documents;
pub mod error;
pub mod sign;
pub mod store;
pub mod web;
