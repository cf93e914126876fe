//! hujjat: legally signed FHIR R5 clinical documents for Uzbekistan's Digital Health Platform.

pub mod app;
pub mod archive;
pub mod compose;
pub mod config;
pub mod demo;
pub mod documents;
pub mod error;
pub mod identity;
pub mod iframe;
pub mod sign;
pub mod store;
pub mod submit;
pub mod web;
