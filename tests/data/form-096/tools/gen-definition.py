#!/usr/bin/env python3
"""Generates forms/form-096.json (the Form 096 definition). The repetitive parts (one rule per prescription /
diagnostic order for their nested arrays, unary counting expressions) are easier to keep right in code.
Run from the repository root: python3 tests/data/form-096/tools/gen-definition.py [OUT]"""
import json
import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "../../../.."))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "forms/form-096.json")

LOINC = "http://loinc.org"
SCT = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
CORE_SD = "https://dhp.uz/fhir/core/StructureDefinition/"
INT_SD = "https://dhp.uz/fhir/integrations/StructureDefinition/"
CORE_CS = "https://terminology.dhp.uz/fhir/core/CodeSystem/"
INT_CS = "https://terminology.dhp.uz/fhir/integrations/CodeSystem/"
HL7_CS = "http://terminology.hl7.org/CodeSystem/"

P = {  # profiles
    "patient": CORE_SD + "uz-core-patient",
    "practitioner": CORE_SD + "uz-core-practitioner",
    "role": CORE_SD + "uz-core-practitioner-role",
    "org": CORE_SD + "uz-core-organization",
    "location": CORE_SD + "uz-core-location",
    "encounter": INT_SD + "form-096-encounter",
    "obs": CORE_SD + "uz-core-observation",
    "condition": CORE_SD + "uz-core-condition",
    "sr": CORE_SD + "uz-core-servicerequest",
    "allergy": CORE_SD + "uz-core-allergy-intolerance",
    "related": CORE_SD + "uz-core-relatedperson",
    "qr": CORE_SD + "uz-core-questionnaire-response",
    "medreq": CORE_SD + "uz-core-medicationrequest",
    "sickleave": INT_SD + "sick-leave-careplan",
}

MAX_NESTED = 20      # prescriptions / diagnostic orders whose nested arrays become resources
MAX_NEWBORNS = 12    # newborns counted by the outcome-summary checks and defaults
N = "$.newbornDeliveryRecord.newborns"
ADM = "$.admissionInformation.admissionDateTime"
DIS = "$.admissionInformation.dischargeDateTime"
DOCTOR = "$.responsiblePersons.attendingDoctor"


def E(x):
    return "{{" + x + "}}"


def coding(system, code, display=None):
    c = {"system": system, "code": code}
    if display:
        c["display"] = display
    return c


def cc(system, code, display=None, text=None):
    c = {"coding": [coding(system, code, display)]}
    if text:
        c["text"] = text
    return c


def text_cc(t):
    return {"text": t}


def qty(expr, code, unit=None):
    return {"value": E(expr), "unit": unit or code, "system": UCUM, "code": code}


def comp(field, code, value_key, value):
    return {"$if": f"exists({field})", "code": code, value_key: value}


def role(key_expr, **extra):
    r = {"$ref": "practitionerRole", "key": key_expr}
    r.update(extra)
    return r


def roles_of(array_expr):
    return [{"$for": array_expr, "do": {"$ref": "practitionerRole", "key": "@"}}]


def ident(cond, system, value, type_code=None, type_display=None, use="official"):
    i = {"$if": cond}
    if use:
        i["use"] = use
    if type_code:
        i["type"] = cc(V2_0203, type_code, type_display)
    i["system"] = system
    i["value"] = E(value)
    return i


def human_name(n, patronymic=True):
    given = [E(f"{n}.given")]
    if patronymic:
        given.append(E(f"{n}.patronymic"))
    return {"$if": f"exists({n})", "use": "official", "text": E(f"name({n})"),
            "family": E(f"{n}.family"), "given": given}


SUBJ = {"$ref": "patient"}
ENC = {"$ref": "encounter"}


def obs(code, effective, performer, components, extra=None):
    r = {"resourceType": "Observation", "status": "final", "code": code, "subject": SUBJ, "encounter": ENC}
    if isinstance(effective, dict):
        r["effectivePeriod"] = effective
    else:
        r["effectiveDateTime"] = E(effective)
    if performer is not None:
        r["performer"] = performer
    if extra:
        r.update(extra)
    r["component"] = components
    return r


def condition(key, for_expr, role_code=None, comment=None):
    res = {
        "resourceType": "Condition",
        "clinicalStatus": {"coding": [{"system": HL7_CS + "condition-clinical",
                                       "code": E("coalesce(@.clinicalStatus, 'active')"),
                                       "display": E("lookup('conditionClinical', coalesce(@.clinicalStatus, 'active'))")}]},
    }
    if role_code:
        res["category"] = [cc(INT_CS + "diagnosis-role-integration", role_code)]
    res.update({
        "code": {"coding": [coding(ICD10, E("@.icd10"))], "text": E("@.text")},
        "subject": SUBJ, "encounter": ENC,
        "onsetDateTime": E("@.onsetDateTime"),
        "recordedDate": E("@.recordedDate"),
        "note": [{"text": E("@.note")}],
    })
    r = {"key": key, "for": for_expr, "profile": P["condition"], "resource": res}
    if comment:
        r = {"key": key, "_comment": comment, **{k: v for k, v in r.items() if k != "key"}}
    return r


def procedure_item(key, for_expr):
    return {"key": key, "for": for_expr, "resource": {
        "resourceType": "Procedure", "status": "completed",
        "code": {"coding": [{"$if": "exists(@.snomedCode)", "system": SCT, "code": E("@.snomedCode")}], "text": E("@.name")},
        "subject": SUBJ, "encounter": ENC,
        "occurrenceDateTime": E("@.dateTime"),
        "performer": [{"actor": role("@.performer")}],
    }}


def med_admin(key, for_expr, request_key=None, comment=None):
    res = {
        "resourceType": "MedicationAdministration", "status": "completed",
        "medication": {"concept": {"coding": [{"$if": "exists(@.medication.snomedCode)", "system": SCT,
                                               "code": E("@.medication.snomedCode")}],
                                   "text": E("@.medication.text")}},
        "subject": SUBJ, "encounter": ENC,
        "occurenceDateTime": E("@.dateTime"),
        "performer": [{"actor": {"reference": role("@.performer")}}],
    }
    if request_key is not None:
        res["request"] = {"$ref": "medicationRequest", "key": str(request_key)}
    res["dosage"] = {"text": E("@.dosageText"),
                     "dose": {"$if": "exists(@.dose)", "value": E("@.dose.value"), "unit": E("@.dose.unit"),
                              "system": UCUM, "code": E("@.dose.unit")}}
    r = {"key": key}
    if comment:
        r["_comment"] = comment
    r["for"] = for_expr
    r["resource"] = res
    return r


def result_obs(i, comment=None):
    r = {"key": f"diagnosticResult{i}"}
    if comment:
        r["_comment"] = comment
    r.update({"for": f"$.diagnosticOrders.orders[{i}].results", "profile": P["obs"], "resource": {
        "resourceType": "Observation", "status": "final",
        "basedOn": [{"$ref": "diagnosticOrder", "key": str(i)}],
        "code": {"coding": [{"$if": "exists(@.loincCode)", "system": LOINC, "code": E("@.loincCode")}], "text": E("@.name")},
        "subject": SUBJ, "encounter": ENC,
        "effectiveDateTime": E("@.dateTime"),
        "performer": [{"$ref": "organization"}],
        "valueQuantity": {"$if": "exists(@.value)", "value": E("@.value"), "unit": E("@.unit"), "system": UCUM, "code": E("@.unit")},
        "valueString": E("@.valueText") + E("lookup('emptyIfFalse', string(exists(@.value)))"),
        "note": [{"$if": "exists(@.value)", "text": E("@.valueText")}],
    }})
    return r


def unary(table, keyfn):
    """concat of one '1' per newborn whose key is in `table` — a count written in unary, so that it can be
    compared with the unary string of a number (tables.unary) without arithmetic."""
    return "concat(" + ", ".join(f"lookup('{table}', {keyfn(i)})" for i in range(MAX_NEWBORNS)) + ")"


LIVE = unary("liveBirthMark", lambda i: f"{N}[{i}].outcome")
STILL = unary("stillbirthMark", lambda i: f"{N}[{i}].outcome")
LIVE_OR_UNKNOWN = unary("liveOrUnknownMark", lambda i: f"coalesce({N}[{i}].outcome, string(exists({N}[{i}])))")
STILL_OR_UNKNOWN = unary("stillOrUnknownMark", lambda i: f"coalesce({N}[{i}].outcome, string(exists({N}[{i}])))")
ALL = unary("presentMark", lambda i: f"string(exists({N}[{i}]))")
KNOWN = unary("knownOutcomeMark", lambda i: f"{N}[{i}].outcome")


def c(x):  # a possibly absent unary count → '' when zero
    return f"coalesce({x}, '')"


# =====================================================================================================
tables = {
    "v2-0203": {},
    "maritalStatus": {"M": "Married", "U": "unmarried", "D": "Divorced", "W": "Widowed"},
    "nationality": {"44": "UZBEK"},
    "position": {"2222.1": "Doctor obstetrician-gynecologist (consultation/ diagnostic/ family polyclinic, clinic etc.)",
                 "3222.1": "Midwife"},
    "encounterStatus": {"true": "completed", "false": "in-progress"},
    "requestStatus": {"true": "completed", "false": "active"},
    "hospitalizationOutcomeSystem": {"mserv-0004-00004": CORE_CS + "encounter-discharge-disposition-home-cs",
                                     "other-hcf": HL7_CS + "discharge-disposition",
                                     "exp": HL7_CS + "discharge-disposition"},
    "hospitalizationOutcomeDisplay": {"mserv-0004-00004": "Discharged", "other-hcf": "Other healthcare facility",
                                      "exp": "Expired"},
    "conditionClinical": {"active": "Active", "recurrence": "Recurrence", "remission": "Remission",
                          "inactive": "Inactive", "resolved": "Resolved"},
    "aboGroup": {"58460004": "Blood group O", "112144000": "Blood group A", "112149005": "Blood group B",
                 "165743006": "Blood group AB"},
    "rhFactor": {"165747007": "RhD positive", "165746003": "RhD negative"},
    "interpretation": {"NEG": "Negative", "POS": "Positive"},
    "snomedNegPos": {"260385009": "Negative", "10828004": "Positive"},
    "fetalLie": {"chr-0045-0001": "Longitudinal"},
    "fetalPresentation": {"chr-0044-0001": "Cephalic"},
    "amnioticFluidSystem": {"168090003": SCT, "chr-0084-0001": INT_CS + "amniotic-fluid-appearance-cs",
                            "chr-0084-0002": INT_CS + "amniotic-fluid-appearance-cs",
                            "chr-0084-0003": INT_CS + "amniotic-fluid-appearance-cs",
                            "chr-0084-0004": INT_CS + "amniotic-fluid-appearance-cs"},
    "amnioticFluidDisplay": {"168090003": "Amniotic fluid - clear"},
    "interventionEffectiveness": {"chr-0049-0001": "Fully effective"},
    "placentaDeliveryMethod": {"chr-0086-0002": "Separated spontaneously"},
    "tissueIntegrity": {"chr-0048-0001": "Intact"},
    "birthOutcome": {"281050002": "Livebirth", "237364002": "Stillbirth"},
    "birthOrderCode": {"0": "chr-0089-0001", "1": "chr-0089-0002"},
    "birthOrderDisplay": {"0": "First newborn: date / time", "1": "Second newborn: date / time"},
    "ordinal": {str(i): str(i + 1) for i in range(30)},
    "lastIndex": {str(i + 1): str(i) for i in range(30)},
    "route": {"26643006": "Oral route", "47625008": "Intravenous route", "78421000": "Intramuscular route",
              "34206005": "Subcutaneous route", "37161004": "Per rectum", "6064005": "Topical route",
              "46713006": "Nasal route", "37839007": "Sublingual route", "54485002": "Ophthalmic route",
              "16857009": "Per vagina", "447694001": "Respiratory tract route"},
    "emptyIfFalse": {"false": ""},
    "liveBirthMark": {"281050002": "1"},
    "stillbirthMark": {"237364002": "1"},
    "knownOutcomeMark": {"281050002": "1", "237364002": "1"},
    "liveOrUnknownMark": {"281050002": "1", "true": "1"},
    "stillOrUnknownMark": {"237364002": "1", "true": "1"},
    "presentMark": {"true": "1"},
    "unary": {str(i): "1" * i for i in range(2 * MAX_NEWBORNS + 1)},
    "unaryLength": {"1" * i: i for i in range(MAX_NEWBORNS + 1)},
}
del tables["v2-0203"]

# =====================================================================================================
resources = []
R = resources.append

R({"key": "patient", "_comment": "The mother: UZ Core Patient, gender female (Composition.subject).",
   "profile": P["patient"], "resource": {
       "resourceType": "Patient",
       "extension": [{
           "$if": "exists($.patient.nationality)",
           "url": CORE_SD + "patient-nationality",
           "extension": [{"url": "code", "valueCodeableConcept": {"coding": [coding(
               CORE_CS + "nationality-cs", E("$.patient.nationality"), E("lookup('nationality', $.patient.nationality)"))]}}]}],
       "identifier": [
           ident("exists($.patient.pinfl)", "https://dhp.uz/fhir/core/sid/pid/uz/ni", "$.patient.pinfl", "NI",
                 "National unique individual identifier"),
           ident("exists($.patient.healthCardNumber)", "https://dhp.uz/fhir/core/sid/pid/uz/hc",
                 "$.patient.healthCardNumber", "HC", "Health Card Number"),
           ident("exists($.patient.passportNumber)", "https://dhp.uz/fhir/core/sid/pid/uz/ppn/local",
                 "$.patient.passportNumber", "PPN", "Passport number"),
           ident("exists($.patient.temporaryMedicalRecordNumber)",
                 "https://dhp.uz/fhir/core/sid/pid/uz/prn/{{$.organization.taxId}}/mrt",
                 "$.patient.temporaryMedicalRecordNumber", "MRT", "Temporary Medical Record Number", use="temp"),
       ],
       "name": [human_name("$.patient.name")],
       "telecom": [{"$if": "exists($.patient.phone)", "system": "phone", "value": E("$.patient.phone")}],
       "gender": "female",
       "birthDate": E("$.patient.birthDate"),
       "address": [{"$if": "exists($.patient.address)", "use": "home",
                    "text": E("$.patient.address.text"), "line": E("$.patient.address.line"),
                    "city": E("$.patient.address.mahalla"), "district": E("$.patient.address.district"),
                    "state": E("$.patient.address.region"), "postalCode": E("$.patient.address.postalCode"),
                    "country": "182"}],
       "maritalStatus": {"$if": "exists($.patient.maritalStatus)", "coding": [coding(
           HL7_CS + "v3-MaritalStatus", E("$.patient.maritalStatus"), E("lookup('maritalStatus', $.patient.maritalStatus)"))]},
       "managingOrganization": {"$ref": "organization"},
   }})

R({"key": "organization", "profile": P["org"], "resource": {
    "resourceType": "Organization",
    "identifier": [{"use": "official", "type": cc(V2_0203, "TAX", "Tax ID number"),
                    "system": "https://dhp.uz/fhir/core/sid/org/uz/soliq", "value": E("$.organization.taxId")}],
    "name": E("$.organization.name"),
}})

R({"key": "encounter", "_comment": "Form096Encounter. participant = every listed practitioner (the attending doctor typed ATND), so that no PractitionerRole is left unreferenced.",
   "profile": P["encounter"], "resource": {
       "resourceType": "Encounter",
       "identifier": [{"$if": "exists($.admissionInformation.medicalRecordNumber)",
                       "system": "https://dhp.uz/fhir/core/sid/doc/uz/medical-record-number",
                       "value": E("$.admissionInformation.medicalRecordNumber")}],
       "status": E(f"lookup('encounterStatus', string(exists({DIS})))"),
       "class": [cc(HL7_CS + "v3-ActCode", "IMP", "inpatient encounter")],
       "type": [cc(CORE_CS + "encounter-type-cs", "mserv-0001-00004", "Treatment services")],
       "subject": SUBJ,
       "participant": [{"$for": "$.practitioners", "do": {
           "type": [{"$if": f"@.pinfl == {DOCTOR}",
                     "coding": [coding(HL7_CS + "v3-ParticipationType", "ATND", "attender")]}],
           "actor": role("@.pinfl")}}],
       "actualPeriod": {"start": E(ADM), "end": E(DIS)},
       "length": {"$if": "exists($.admissionInformation.bedDays)", "value": E("$.admissionInformation.bedDays"),
                  "unit": "days", "system": UCUM, "code": "d"},
       "serviceProvider": {"$ref": "organization"},
       "admission": {
           "origin": {"$ref": "referringOrganization", "display": E("$.admissionInformation.referringOrganization.name")},
           "destination": {"$ref": "transferOrganization", "display": E("$.admissionInformation.transferredTo.name")},
           "dischargeDisposition": {"coding": [coding(
               E("lookup('hospitalizationOutcomeSystem', $.admissionInformation.hospitalizationOutcome)"),
               E("$.admissionInformation.hospitalizationOutcome"),
               E("lookup('hospitalizationOutcomeDisplay', $.admissionInformation.hospitalizationOutcome)"))]},
       },
       "location": [{"$if": "exists($.admissionInformation.ward) || exists($.admissionInformation.roomNumber)",
                     "location": {"$ref": "location", "display": E("$.admissionInformation.ward")},
                     "period": {"start": E(ADM), "end": E(DIS)}}],
   }})

R({"key": "location", "if": "exists($.admissionInformation.ward) || exists($.admissionInformation.roomNumber)",
   "profile": P["location"], "resource": {
       "resourceType": "Location",
       "identifier": [{"$if": "exists($.admissionInformation.roomNumber)", "use": "official",
                       "type": cc(CORE_CS + "location-kinds-cs", "Ward", "Ward"),
                       "system": "https://dhp.uz/fhir/core/NamingSystem/location-unit",
                       "value": E("$.admissionInformation.roomNumber")}],
       "status": "active",
       "name": E("$.admissionInformation.ward"),
       "managingOrganization": {"$ref": "organization"},
   }})


def other_org(key, path, comment):
    return {"key": key, "_comment": comment, "for": path, "if": "exists(@.taxId)", "profile": P["org"], "resource": {
        "resourceType": "Organization",
        "identifier": [{"use": "official", "type": cc(V2_0203, "TAX", "Tax ID number"),
                        "system": "https://dhp.uz/fhir/core/sid/org/uz/soliq", "value": E("@.taxId")}],
        "name": E("@.name"),
    }}


R(other_org("referringOrganization", "$.admissionInformation.referringOrganization",
            "Only with a tax id: DHP requires a Soliq identifier on every Organization. Without one the name is shown in the admissionInformation narrative only."))
R(other_org("transferOrganization", "$.admissionInformation.transferredTo",
            "Encounter.admission.destination; only with a tax id (see referringOrganization)."))

R({"key": "practitioner", "for": "$.practitioners", "id": "@.pinfl", "profile": P["practitioner"], "resource": {
    "resourceType": "Practitioner",
    "identifier": [{"use": "official", "type": cc(V2_0203, "NI", "National unique individual identifier"),
                    "system": "https://dhp.uz/fhir/core/sid/pid/uz/ni", "value": E("@.pinfl")}],
    "name": [human_name("@.name")],
    "telecom": [{"$if": "exists(@.phone)", "system": "phone", "value": E("@.phone")}],
}})

R({"key": "practitionerRole", "for": "$.practitioners", "id": "@.pinfl", "profile": P["role"], "resource": {
    "resourceType": "PractitionerRole",
    "active": True,
    "practitioner": {"$ref": "practitioner", "key": "@.pinfl", "display": E("name(@.name)")},
    "organization": {"$ref": "organization"},
    "code": [{"coding": [{"$if": "exists(@.positionCode)", "system": CORE_CS + "position-and-profession-cs",
                          "code": E("@.positionCode"), "display": E("lookup('position', @.positionCode)")}],
              "text": E("@.positionText")}],
    "specialty": [{"$if": "exists(@.specialtyCode)",
                   "coding": [coding(CORE_CS + "profession-specialization-cs", E("@.specialtyCode"))]}],
}})

# ---- admissionInformation -------------------------------------------------------------------------
R({"key": "admissionLaboratory", "for": "$.admissionInformation.laboratory", "profile": P["obs"], "resource": obs(
    text_cc("Form 096 admission laboratory and screening observations"),
    f"coalesce(@.dateTime, {ADM})", [role(DOCTOR)], [
        comp("@.bloodGroup", cc(LOINC, "883-9", "ABO group [Type] in Blood"), "valueCodeableConcept",
             {"coding": [coding(SCT, E("@.bloodGroup"), E("lookup('aboGroup', @.bloodGroup)"))]}),
        comp("@.rhFactor", cc(LOINC, "10331-7", "Rh [Type] in Blood"), "valueCodeableConcept",
             {"coding": [coding(SCT, E("@.rhFactor"), E("lookup('rhFactor', @.rhFactor)"))]}),
        comp("@.hemoglobinGL", cc(LOINC, "718-7", "Hemoglobin [Mass/volume] in Blood"), "valueQuantity",
             qty("@.hemoglobinGL", "g/L")),
        comp("@.antibodyTiter", text_cc("Antibody level"), "valueQuantity", {"value": E("@.antibodyTiter"), "unit": "titer"}),
        comp("@.allergyPresent", cc(LOINC, "LP345116-0", "Allergy"), "valueBoolean", E("@.allergyPresent")),
        comp("@.syphilisTest", cc(LOINC, "47236-5", "Treponema pallidum IgG+IgM Ab [Presence] in Serum or Plasma by Immunoassay"),
             "valueCodeableConcept", {"coding": [coding(HL7_CS + "v3-ObservationInterpretation", E("@.syphilisTest"),
                                                        E("lookup('interpretation', @.syphilisTest)"))]}),
        comp("@.gonorrhoeaTest", cc(LOINC, "24111-7"), "valueCodeableConcept",
             {"coding": [coding(SCT, E("@.gonorrhoeaTest"), E("lookup('snomedNegPos', @.gonorrhoeaTest)"))]}),
        comp("@.prenatalCareSupervised", cc(SCT, "424441002", "Prenatal initial visit"), "valueBoolean",
             E("@.prenatalCareSupervised")),
        comp("@.prenatalVisitsTotal", cc(SCT, "3401000175105"), "valueInteger", E("@.prenatalVisitsTotal")),
        comp("@.prenatalVisitsCount", cc(INT_CS + "prenatal-visit-count-observation-cs", "chr-0090-0001",
                                         "Number of prenatal visits"), "valueInteger", E("@.prenatalVisitsCount")),
        comp("@.maternalDeathTiming", text_cc("Timing of maternal death relative to pregnancy and childbirth"),
             "valueCodeableConcept", {"coding": [coding(INT_CS + "maternal-death-timing-cs", E("@.maternalDeathTiming"))]}),
        {"$if": "!exists(@.maternalDeathTiming)",
         "code": text_cc("Timing of maternal death relative to pregnancy and childbirth"),
         "dataAbsentReason": cc(HL7_CS + "data-absent-reason", "not-applicable", "Not Applicable")},
    ])})

R({"key": "allergy", "for": "$.admissionInformation.allergies", "profile": P["allergy"], "resource": {
    "resourceType": "AllergyIntolerance",
    "clinicalStatus": cc(HL7_CS + "allergyintolerance-clinical", "active", "Active"),
    "code": {"coding": [{"$if": "exists(@.substanceSnomedCode)", "system": SCT, "code": E("@.substanceSnomedCode")}],
             "text": E("@.substance")},
    "patient": SUBJ, "encounter": ENC,
    "reaction": [{"manifestation": [{"concept": {"text": E("@.reaction")}}]}],
}})

R(condition("admissionDiagnosis", "$.admissionInformation.admissionDiagnoses", "admission"))
R(condition("clinicalDiagnosis", "$.admissionInformation.clinicalDiagnoses", None,
            "Clinical diagnosis: no diagnosis-role category (as in the IG example)."))
R(condition("finalDiagnosis", "$.admissionInformation.finalDiagnoses", "main"))
R(condition("laborComplication", "$.admissionInformation.laborComplications", "complication"))
R(condition("postpartumComplication", "$.admissionInformation.postpartumComplications", "complication"))
R(procedure_item("operation", "$.admissionInformation.operations"))

# ---- medicalAndObstetricHistory ------------------------------------------------------------------
H_FIELDS = ["generalHealth", "menarcheAgeYears", "sexualDebutAgeYears", "previousPregnancies", "previousAbortions",
            "previousNewbornWeightsG", "livingChildren", "stillbirths", "newbornDeaths", "employer", "occupation"]

R({"key": "spouse", "for": "$.medicalAndObstetricHistory.spouse", "profile": P["related"], "resource": {
    "resourceType": "RelatedPerson",
    "identifier": [ident("exists(@.pinfl)", "https://dhp.uz/fhir/core/sid/pid/uz/ni", "@.pinfl", "NI",
                         "National unique individual identifier")],
    "active": True,
    "patient": SUBJ,
    "relationship": [cc(HL7_CS + "v3-RoleClass", "NOK", "next of kin")],
    "name": [human_name("@.name")],
    "telecom": [{"$if": "exists(@.phone)", "system": "phone", "value": E("@.phone")}],
    "gender": "male",
}})

R({"key": "obstetricHistory", "for": "$.medicalAndObstetricHistory",
   "if": " || ".join(f"exists(@.{f})" for f in H_FIELDS), "profile": P["obs"], "resource": obs(
       text_cc("Form 096 maternal medical and obstetric history"), f"coalesce(@.recordedAt, {ADM})", [role(DOCTOR)], [
           comp("@.generalHealth", cc(SCT, "720372000"), "valueString", E("@.generalHealth")),
           comp("@.menarcheAgeYears", cc(LOINC, "42798-9", "Age at menarche"), "valueQuantity", qty("@.menarcheAgeYears", "a", "years")),
           comp("@.sexualDebutAgeYears", text_cc("Age at sexual debut"), "valueQuantity", qty("@.sexualDebutAgeYears", "a", "years")),
           comp("@.previousPregnancies", cc(SCT, "246211005", "Number of previous pregnancies"), "valueInteger", E("@.previousPregnancies")),
           comp("@.previousAbortions", text_cc("Number of previous abortions"), "valueInteger", E("@.previousAbortions")),
           {"$for": "@.previousNewbornWeightsG", "as": "w", "do": {
               "code": text_cc("Weights of previous newborns"), "valueQuantity": qty("w", "g")}},
           comp("@.livingChildren", text_cc("Number of living children"), "valueInteger", E("@.livingChildren")),
           comp("@.stillbirths", cc(SCT, "252112002", "Number of stillbirths"), "valueInteger", E("@.stillbirths")),
           comp("@.newbornDeaths", cc(LOINC, "LA31614-3", "Newborn death"), "valueInteger", E("@.newbornDeaths")),
           comp("@.employer", cc(SCT, "394571004", "Employer"), "valueString", E("@.employer")),
           comp("@.occupation", text_cc("Occupation and position"), "valueString", E("@.occupation")),
       ])})

R(condition("generalDisease", "$.medicalAndObstetricHistory.generalDiseases"))
R(condition("gynecologicalDisease", "$.medicalAndObstetricHistory.gynecologicalDiseases"))
R(procedure_item("previousOperation", "$.medicalAndObstetricHistory.previousOperations"))

R({"key": "historyQuestionnaireResponse",
   "_comment": "form-096-history: previous-pregnancies and epidemiological-history (one resource, entry of both history sections, as in the IG example).",
   "if": "exists($.medicalAndObstetricHistory.previousPregnanciesNarrative) || exists($.epidemiologicalHistory.notes)",
   "profile": P["qr"], "resource": {
       "resourceType": "QuestionnaireResponse",
       "questionnaire": "https://dhp.uz/fhir/integrations/Questionnaire/form-096-history",
       "status": "completed",
       "subject": SUBJ, "encounter": ENC,
       "authored": E(f"coalesce($.medicalAndObstetricHistory.recordedAt, {ADM})"),
       "author": role(DOCTOR),
       "item": [
           {"$if": "exists($.medicalAndObstetricHistory.previousPregnanciesNarrative)", "linkId": "previous-pregnancies",
            "text": "Previous pregnancies",
            "answer": [{"valueString": E("$.medicalAndObstetricHistory.previousPregnanciesNarrative")}]},
           {"$if": "exists($.epidemiologicalHistory.notes)", "linkId": "epidemiological-history",
            "text": "Epidemiological history", "answer": [{"valueString": E("$.epidemiologicalHistory.notes")}]},
       ],
   }})

# ---- currentPregnancy -----------------------------------------------------------------------------
R({"key": "currentPregnancyQuestionnaireResponse", "if": "exists($.currentPregnancy.course) || exists($.currentPregnancy.conditionOnArrival)",
   "profile": P["qr"], "resource": {
       "resourceType": "QuestionnaireResponse",
       "questionnaire": "https://dhp.uz/fhir/integrations/Questionnaire/form-096-current-pregnancy",
       "status": "completed",
       "subject": SUBJ, "encounter": ENC,
       "authored": E(f"coalesce($.currentPregnancy.generalExamination.dateTime, {ADM})"),
       "author": role(DOCTOR),
       "item": [
           {"$if": "exists($.currentPregnancy.course)", "linkId": "current-pregnancy-course",
            "text": "Course and complications of this pregnancy", "answer": [{"valueString": E("$.currentPregnancy.course")}]},
           {"$if": "exists($.currentPregnancy.conditionOnArrival)", "linkId": "condition-on-arrival",
            "text": "Condition on arrival", "answer": [{"valueString": E("$.currentPregnancy.conditionOnArrival")}]},
       ],
   }})

R(condition("pregnancyComplication", "$.currentPregnancy.pregnancyComplications"))

BP = "@.bloodPressure"
R({"key": "generalExamination", "for": "$.currentPregnancy.generalExamination", "profile": P["obs"], "resource": obs(
    text_cc("General examination on maternity admission"), f"coalesce(@.dateTime, {ADM})", [role(DOCTOR)], [
        comp("@.generalInspection", text_cc("General inspection findings"), "valueString", E("@.generalInspection")),
        comp("@.heart", cc(LOINC, "LP19466-9"), "valueString", E("@.heart")),
        comp("@.heartRate", cc(LOINC, "8867-4", "Heart rate"), "valueQuantity", qty("@.heartRate", "/min", "beats/min")),
        {"$if": f"exists({BP}.rightArm) && exists({BP}.leftArm)",
         "code": cc(LOINC, "85354-9", "Blood pressure panel with all children optional"),
         "valueString": f"Right arm {{{{{BP}.rightArm.systolic}}}}/{{{{{BP}.rightArm.diastolic}}}} mmHg; left arm {{{{{BP}.leftArm.systolic}}}}/{{{{{BP}.leftArm.diastolic}}}} mmHg"},
        {"$if": f"exists({BP}.rightArm) && !exists({BP}.leftArm)",
         "code": cc(LOINC, "85354-9", "Blood pressure panel with all children optional"),
         "valueString": f"Right arm {{{{{BP}.rightArm.systolic}}}}/{{{{{BP}.rightArm.diastolic}}}} mmHg"},
        {"$if": f"!exists({BP}.rightArm) && exists({BP}.leftArm)",
         "code": cc(LOINC, "85354-9", "Blood pressure panel with all children optional"),
         "valueString": f"Left arm {{{{{BP}.leftArm.systolic}}}}/{{{{{BP}.leftArm.diastolic}}}} mmHg"},
        comp("@.respiratorySystem", text_cc("Respiratory system examination findings"), "valueString", E("@.respiratorySystem")),
        comp("@.digestiveSystem", text_cc("Digestive system examination findings"), "valueString", E("@.digestiveSystem")),
        comp("@.urogenitalSystem", text_cc("Urogenital system examination findings"), "valueString", E("@.urogenitalSystem")),
        comp("@.urineCentrifugate", text_cc("Urine centrifugate findings"), "valueString", E("@.urineCentrifugate")),
        comp("@.heightCm", cc(LOINC, "8302-2", "Body height"), "valueQuantity", qty("@.heightCm", "cm")),
        comp("@.weightKg", cc(LOINC, "29463-7", "Body weight"), "valueQuantity", qty("@.weightKg", "kg")),
        comp("@.temperatureCel", cc(LOINC, "8310-5", "Body temperature"), "valueQuantity", qty("@.temperatureCel", "Cel", "degrees C")),
        comp("@.pregnancyNumber", cc(LOINC, "LP114989-9", "Pregnancy number"), "valueInteger", E("@.pregnancyNumber")),
        comp("@.birthNumber", cc(LOINC, "LP114921-2", "Number of birth"), "valueInteger", E("@.birthNumber")),
        comp("@.lastMenstrualPeriod", cc(LOINC, "8665-2", "Last menstrual period start date"), "valueDateTime", E("@.lastMenstrualPeriod")),
        comp("@.firstFetalMovement", cc(LOINC, "57088-7"), "valueDateTime", E("@.firstFetalMovement")),
    ])})

# ---- obstetricExamination -------------------------------------------------------------------------
OE_AT = f"coalesce($.obstetricExamination.examinedAt, {ADM})"
PELV = INT_CS + "maternal-pelvimetry-measurement-code-cs"
R({"key": "pelvimetry", "for": "$.obstetricExamination.pelvimetry", "profile": P["obs"], "resource": obs(
    text_cc("Maternal pelvimetry and abdominal measurements"), OE_AT, roles_of("$.obstetricExamination.examinedBy"), [
        comp("@.distantiaSpinarumCm", cc(PELV, "chr-0083-0001"), "valueQuantity", qty("@.distantiaSpinarumCm", "cm")),
        comp("@.distantiaCristarumCm", cc(PELV, "chr-0083-0002"), "valueQuantity", qty("@.distantiaCristarumCm", "cm")),
        comp("@.distantiaTrochantericaCm", cc(PELV, "chr-0083-0003"), "valueQuantity", qty("@.distantiaTrochantericaCm", "cm")),
        comp("@.conjugataExternaCm", cc(PELV, "chr-0083-0004"), "valueQuantity", qty("@.conjugataExternaCm", "cm")),
        comp("@.conjugataDiagonalisCm", cc(PELV, "chr-0083-0005"), "valueQuantity", qty("@.conjugataDiagonalisCm", "cm")),
        comp("@.conjugataVeraCm", cc(PELV, "chr-0083-0006"), "valueQuantity", qty("@.conjugataVeraCm", "cm")),
        comp("@.abdominalCircumferenceCm", cc(LOINC, "8280-0", "Waist Circumference at umbilicus by Tape measure"),
             "valueQuantity", qty("@.abdominalCircumferenceCm", "cm")),
        comp("@.fundalHeightCm", cc(LOINC, "11881-0", "Uterus Fundal height by Tape measure"), "valueQuantity",
             qty("@.fundalHeightCm", "cm")),
    ])})

R({"key": "fetalAssessment", "for": "$.obstetricExamination.fetalAssessment", "profile": P["obs"], "resource": obs(
    text_cc("Fetal assessment"), OE_AT, roles_of("$.obstetricExamination.examinedBy"), [
        comp("@.lie", cc(LOINC, "11874-5", "Fetal position palpation"), "valueCodeableConcept",
             {"coding": [coding(INT_CS + "fetal-lie-cs", E("@.lie"), E("lookup('fetalLie', @.lie)"))]}),
        comp("@.position", cc(LOINC, "LP72582-7", "Fetal position"), "valueCodeableConcept", {"text": E("@.position")}),
        comp("@.variety", text_cc("Fetal attitude or variety"), "valueCodeableConcept", {"text": E("@.variety")}),
        comp("@.heartSoundsLocation", text_cc("Location where fetal heart sounds are heard"), "valueString",
             E("@.heartSoundsLocation")),
        comp("@.heartRate", cc(LOINC, "55283-6", "Fetal Heart rate"), "valueInteger", E("@.heartRate")),
        comp("@.presentation", cc(LOINC, "11877-8", "Fetal presentation US"), "valueCodeableConcept",
             {"coding": [coding(INT_CS + "fetal-presentation-cs", E("@.presentation"), E("lookup('fetalPresentation', @.presentation)"))]}),
        comp("@.presentingPartStation", text_cc("Station of the fetal presenting part"), "valueString", E("@.presentingPartStation")),
        comp("@.laborActivity", text_cc("Labor activity"), "valueString", E("@.laborActivity")),
        comp("@.estimatedWeightG", cc(LOINC, "11727-5", "Fetal Body weight estimated by US"), "valueQuantity",
             qty("@.estimatedWeightG", "g")),
    ])})

# ---- laborCourse ----------------------------------------------------------------------------------
L_FIELDS = ["onset", "membranesRupturedAt", "amnioticFluidVolumeMl", "amnioticFluidAppearance", "fullDilationAt",
            "pushingStartedAt", "totalDurationMin", "firstStageMin", "secondStageMin", "thirdStageMin", "laborEnd"]
R({"key": "labor", "for": "$.laborCourse", "if": " || ".join(f"exists(@.{f})" for f in L_FIELDS),
   "profile": P["obs"], "resource": obs(
       cc(SCT, "386216000", "Human parturition, function"), {"start": E("@.onset"), "end": E("@.laborEnd")},
       roles_of("$.laborCourse.attendedBy"), [
           comp("@.onset", cc(LOINC, "LP172832-0", "Onset of labor"), "valueDateTime", E("@.onset")),
           comp("@.membranesRupturedAt", text_cc("Date and time of rupture of membranes"), "valueDateTime", E("@.membranesRupturedAt")),
           comp("@.amnioticFluidVolumeMl", cc(INT_CS + "amniotic-fluid-volume-measurement-cs", "chr-0087-0001", "Amniotic fluid volume"),
                "valueQuantity", qty("@.amnioticFluidVolumeMl", "mL")),
           comp("@.amnioticFluidAppearance", cc(LOINC, "1887-9", "Appearance of Amniotic fluid"), "valueCodeableConcept",
                {"coding": [coding(E("lookup('amnioticFluidSystem', @.amnioticFluidAppearance)"), E("@.amnioticFluidAppearance"),
                                   E("lookup('amnioticFluidDisplay', @.amnioticFluidAppearance)"))]}),
           comp("@.fullDilationAt", text_cc("Date and time of full cervical dilation"), "valueDateTime", E("@.fullDilationAt")),
           comp("@.pushingStartedAt", text_cc("Date and time pushing began"), "valueDateTime", E("@.pushingStartedAt")),
           comp("@.totalDurationMin", cc(SCT, "271562002", "Total duration of labor"), "valueQuantity", qty("@.totalDurationMin", "min", "minutes")),
           comp("@.firstStageMin", cc(SCT, "6893006", "First stage of labor"), "valueQuantity", qty("@.firstStageMin", "min", "minutes")),
           comp("@.secondStageMin", cc(SCT, "42857002", "Second stage of labor"), "valueQuantity", qty("@.secondStageMin", "min", "minutes")),
           comp("@.thirdStageMin", cc(SCT, "15898009", "Third stage of labor"), "valueQuantity", qty("@.thirdStageMin", "min", "minutes")),
       ])})

R({"key": "laborSupport", "for": "$.laborCourse.laborSupport", "resource": {
    "resourceType": "Procedure", "status": "completed",
    "code": cc(SCT, "698506008", "Supportive counseling"),
    "subject": SUBJ, "encounter": ENC,
    "occurrenceDateTime": E("@.dateTime"),
    "performer": [{"actor": role("@.performer")}],
    "outcome": {"$if": "exists(@.effectiveness)", "coding": [coding(
        INT_CS + "intervention-effectiveness-cs", E("@.effectiveness"), E("lookup('interventionEffectiveness', @.effectiveness)"))]},
    "note": [{"text": E("@.note")}],
}})
R(med_admin("laborAnalgesia", "$.laborCourse.analgesia"))

# ---- newbornDeliveryRecord ------------------------------------------------------------------------
R({"key": "newborn", "_comment": "One UZ Core Patient per newborn (id = array index). Without PINFL or health card the identifier carries a data-absent-reason (UZ Core pattern for unidentified patients).",
   "for": N, "profile": P["patient"], "resource": {
       "resourceType": "Patient",
       "identifier": [
           ident("exists(@.pinfl)", "https://dhp.uz/fhir/core/sid/pid/uz/ni", "@.pinfl", "NI", "National unique individual identifier"),
           ident("exists(@.healthCardNumber)", "https://dhp.uz/fhir/core/sid/pid/uz/hc", "@.healthCardNumber", "HC", "Health Card Number"),
           {"$if": "!exists(@.pinfl) && !exists(@.healthCardNumber)", "use": "temp",
            "_value": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "unknown"}]}},
       ],
       "name": [{"$if": "exists(@.name)", "use": "official", "text": E("joinNonEmpty(' ', @.name.family, @.name.given)"),
                 "family": E("@.name.family"), "given": [E("@.name.given")]}],
       "gender": E("@.gender"),
       "birthDate": E("date(@.birthDateTime)"),
       "managingOrganization": {"$ref": "organization"},
   }})

R({"key": "birthObservation", "_comment": "Birth record per newborn: subject = the newborn, coded with the birth order (only the first two codes exist; later newborns get code.text only).",
   "for": N, "profile": P["obs"], "resource": {
       "resourceType": "Observation", "status": "final",
       "code": {"coding": [{"$if": "exists(lookup('birthOrderCode', string(@index)))",
                            "system": INT_CS + "newborn-birth-datetime-observation-cs",
                            "code": E("lookup('birthOrderCode', string(@index))"),
                            "display": E("lookup('birthOrderDisplay', string(@index))")}],
                "text": "Newborn no. {{lookup('ordinal', string(@index))}}: date and time of birth"},
       "subject": {"$ref": "newborn", "key": "@index"},
       "encounter": ENC,
       "effectiveDateTime": E("@.birthDateTime"),
       "performer": [role("@.deliveredBy")],
       "component": [
           comp("@.outcome", cc(LOINC, "69043-8", "Other pregnancy outcomes #"), "valueCodeableConcept",
                {"coding": [coding(SCT, E("@.outcome"), E("lookup('birthOutcome', @.outcome)"))]}),
           comp("@.presentation", cc(LOINC, "11877-8", "Fetal presentation US"), "valueCodeableConcept",
                {"coding": [coding(INT_CS + "fetal-presentation-cs", E("@.presentation"), E("lookup('fetalPresentation', @.presentation)"))]}),
           comp("@.weightG", cc(LOINC, "8339-4", "Birth weight Measured"), "valueQuantity", qty("@.weightG", "g")),
           comp("@.lengthCm", cc(LOINC, "89269-5", "Body height Measured --at birth"), "valueQuantity", qty("@.lengthCm", "cm")),
           comp("@.headCircumferenceCm", cc(LOINC, "9843-4", "Head Occipital-frontal circumference"), "valueQuantity",
                qty("@.headCircumferenceCm", "cm")),
           comp("@.chestCircumferenceCm", cc(SCT, "248366000", "Chest circumference"), "valueQuantity", qty("@.chestCircumferenceCm", "cm")),
           comp("@.apgar1Min", cc(LOINC, "9272-6", "1 minute Apgar Score"), "valueInteger", E("@.apgar1Min")),
           comp("@.apgar5Min", cc(LOINC, "9274-2", "5 minute Apgar Score"), "valueInteger", E("@.apgar5Min")),
           comp("@.apgarAssessment", text_cc("Clinical condition assessed by the Apgar scale"), "valueCodeableConcept",
                {"text": E("@.apgarAssessment")}),
       ],
   }})

R({"key": "eyeProphylaxis", "for": N, "if": "exists(@.eyeProphylaxis)", "resource": {
    "resourceType": "Procedure", "status": "completed",
    "code": cc(INT_CS + "newborn-eye-prophylaxis-cs", "chr-0085-0001", "Neonatal ocular prophylaxis against gonococcal ophthalmia"),
    "subject": {"$ref": "newborn", "key": "@index"},
    "encounter": ENC,
    "occurrenceDateTime": E("@.eyeProphylaxis.dateTime"),
    "performer": [{"actor": role("@.eyeProphylaxis.performer")}],
    "note": [{"text": E("@.eyeProphylaxis.note")}],
}})

DELIVERY_END = f"coalesce($.newbornDeliveryRecord.placenta.deliveredAt, $.laborCourse.laborEnd, {N}[0].birthDateTime)"
R({"key": "deliveryObservation", "for": "$.newbornDeliveryRecord",
   "if": "exists(@.placenta.intervalFromBirthMin) || exists(@.placenta.placentaIntegrity) || exists(@.placenta.membranesIntegrity) || exists(@.umbilicalCord) || exists(@.bloodLossMl)",
   "profile": P["obs"], "resource": obs(
       text_cc("Apgar, placenta, membranes, cord and blood-loss record"), DELIVERY_END,
       roles_of("$.newbornDeliveryRecord.attendedBy"), [
           comp("@.placenta.intervalFromBirthMin", text_cc("Interval from birth to placental delivery"), "valueQuantity",
                qty("@.placenta.intervalFromBirthMin", "min", "minutes")),
           comp("@.placenta.placentaIntegrity", text_cc("Placental completeness"), "valueCodeableConcept",
                {"coding": [coding(INT_CS + "tissue-integrity-status-cs", E("@.placenta.placentaIntegrity"),
                                   E("lookup('tissueIntegrity', @.placenta.placentaIntegrity)"))]}),
           comp("@.placenta.membranesIntegrity", text_cc("Fetal membranes completeness"), "valueCodeableConcept",
                {"coding": [coding(INT_CS + "tissue-integrity-status-cs", E("@.placenta.membranesIntegrity"),
                                   E("lookup('tissueIntegrity', @.placenta.membranesIntegrity)"))]}),
           comp("@.umbilicalCord.lengthCm", text_cc("Umbilical cord length"), "valueQuantity", qty("@.umbilicalCord.lengthCm", "cm")),
           comp("@.umbilicalCord.entanglement", text_cc("Umbilical cord entanglement present"), "valueBoolean",
                E("@.umbilicalCord.entanglement")),
           comp("@.umbilicalCord.characteristics", text_cc("Umbilical cord characteristics"), "valueString",
                E("@.umbilicalCord.characteristics")),
           comp("@.bloodLossMl", text_cc("Blood loss during labor"), "valueQuantity", qty("@.bloodLossMl", "mL")),
       ])})

R({"key": "placentalDelivery", "for": "$.newbornDeliveryRecord.placenta",
   "if": "exists(@.deliveredAt) || exists(@.method) || exists(@.performer)", "resource": {
       "resourceType": "Procedure", "status": "completed",
       "code": cc(SCT, "236994008", "Placental delivery procedure"),
       "subject": SUBJ, "encounter": ENC,
       "occurrenceDateTime": E("@.deliveredAt"),
       "performer": [{"actor": role("@.performer")}],
       "outcome": {"$if": "exists(@.method)", "coding": [coding(
           INT_CS + "placenta-delivery-method-cs", E("@.method"), E("lookup('placentaDeliveryMethod', @.method)"))]},
   }})

S = "$.newbornDeliveryRecord.outcomeSummary"
ALL_KNOWN = f"{c(KNOWN)} == {c(ALL)}"
R({"key": "birthOutcomeSummary",
   "_comment": "Sent counts win; a missing liveBirths / stillbirths is counted over newborns[].outcome when every newborn has an outcome (the count is built in unary with the *Mark tables, see checks).",
   "for": S, "profile": P["obs"], "resource": obs(
       text_cc("Birth outcome summary for this delivery"), DELIVERY_END, [role(DOCTOR)], [
           comp("@.liveBirths", text_cc("Number of live births in this delivery"), "valueInteger", E("@.liveBirths")),
           {"$if": f"!exists(@.liveBirths) && {ALL_KNOWN}", "code": text_cc("Number of live births in this delivery"),
            "valueInteger": E(f"number(lookup('unaryLength', {c(LIVE)}))")},
           comp("@.stillbirths", text_cc("Number of stillbirths in this delivery"), "valueInteger", E("@.stillbirths")),
           {"$if": f"!exists(@.stillbirths) && {ALL_KNOWN}", "code": text_cc("Number of stillbirths in this delivery"),
            "valueInteger": E(f"number(lookup('unaryLength', {c(STILL)}))")},
           comp("@.postnatalDeaths", text_cc("Number of postnatal deaths from this delivery"), "valueInteger", E("@.postnatalDeaths")),
       ])})

# ---- postpartumPeriod -----------------------------------------------------------------------------
R({"key": "postpartumObservation", "for": "$.postpartumPeriod.observations", "profile": P["obs"], "resource": obs(
    text_cc("Postpartum observation row"), "@.dateTime", [role("@.examinedBy")], [
        comp("@.generalCondition", text_cc("General condition during the postpartum period"), "valueString", E("@.generalCondition")),
        comp("@.breasts", cc(SCT, "116339002", "Breast finding"), "valueString", E("@.breasts")),
        comp("@.fundalHeightCm", cc(LOINC, "11881-0", "Uterus Fundal height by Tape measure"), "valueQuantity", qty("@.fundalHeightCm", "cm")),
        comp("@.lochia", cc(SCT, "49636006", "Lochia"), "valueString", E("@.lochia")),
        comp("@.bladder", cc(SCT, "249585009", "Urinary bladder finding"), "valueString", E("@.bladder")),
        comp("@.bowel", cc(SCT, "118435004"), "valueString", E("@.bowel")),
        comp("@.recommendations", text_cc("Treatment recommendations during the postpartum period"), "valueString", E("@.recommendations")),
        comp("@.dietTable", text_cc("Diet table number"), "valueInteger", E("@.dietTable")),
    ])})

# ---- medicationOrders -----------------------------------------------------------------------------
R({"key": "medicationRequest", "for": "$.medicationOrders.prescriptions", "profile": P["medreq"], "resource": {
    "resourceType": "MedicationRequest",
    "identifier": [{"value": E("@.number")}],
    "status": E(f"lookup('requestStatus', string(exists({DIS})))"),
    "intent": "order",
    "medication": {"concept": {"coding": [{"$if": "exists(@.medication.snomedCode)", "system": SCT, "code": E("@.medication.snomedCode")}],
                               "text": E("@.medication.text")}},
    "subject": SUBJ, "encounter": ENC,
    "authoredOn": E("@.prescribedAt"),
    "requester": role("@.prescriber"),
    "dosageInstruction": [{"text": E("@.dosageText"),
                           "route": {"$if": "exists(@.route)", "coding": [coding(SCT, E("@.route"), E("lookup('route', @.route)"))]}}],
    "note": [{"text": E("@.note")}],
}})
NESTED_NOTE = (f"Engine workaround: a rule's `for` cannot iterate a nested array, so prescriptions[0..{MAX_NESTED - 1}] each get a rule "
               "(a check rejects administrations on later prescriptions instead of dropping them).")
for i in range(MAX_NESTED):
    R(med_admin(f"medicationAdministration{i}", f"$.medicationOrders.prescriptions[{i}].administrations", i,
                NESTED_NOTE if i == 0 else None))

# ---- diagnosticOrders -----------------------------------------------------------------------------
R({"key": "diagnosticOrder", "for": "$.diagnosticOrders.orders", "profile": P["sr"], "resource": {
    "resourceType": "ServiceRequest",
    "status": E("lookup('requestStatus', string(exists(@.results)))"),
    "intent": "order",
    "code": {"concept": {"coding": [{"$if": "exists(@.loincCode)", "system": LOINC, "code": E("@.loincCode")}], "text": E("@.name")}},
    "subject": SUBJ, "encounter": ENC,
    "authoredOn": E("@.orderedAt"),
    "requester": role("@.orderedBy"),
}})
for i in range(MAX_NESTED):
    R(result_obs(i, NESTED_NOTE.replace("prescriptions", "diagnostic orders").replace("administrations", "results")
                 if i == 0 else None))

# ---- procedureOrders ------------------------------------------------------------------------------
R({"key": "procedureOrder", "for": "$.procedureOrders.orders", "profile": P["sr"], "resource": {
    "resourceType": "ServiceRequest",
    "status": E("lookup('requestStatus', string(exists(@.performedAt) || exists(@.performer)))"),
    "intent": "order",
    "code": {"concept": {"coding": [{"$if": "exists(@.snomedCode)", "system": SCT, "code": E("@.snomedCode")}], "text": E("@.name")}},
    "subject": SUBJ, "encounter": ENC,
    "authoredOn": E("@.orderedAt"),
    "requester": role("@.orderedBy"),
}})
R({"key": "orderedProcedure", "for": "$.procedureOrders.orders", "if": "exists(@.performedAt) || exists(@.performer)", "resource": {
    "resourceType": "Procedure",
    "basedOn": [{"$ref": "procedureOrder", "key": "@index"}],
    "status": "completed",
    "code": {"coding": [{"$if": "exists(@.snomedCode)", "system": SCT, "code": E("@.snomedCode")}], "text": E("@.name")},
    "subject": SUBJ, "encounter": ENC,
    "occurrenceDateTime": E("@.performedAt"),
    "performer": [{"actor": role("@.performer")}],
}})

# ---- usedMaterials / sickLeaveCertificates ---------------------------------------------------------
R({"key": "usedMaterial", "for": "$.usedMaterials.items", "resource": {
    "resourceType": "SupplyDelivery", "status": "completed",
    "patient": SUBJ,
    "suppliedItem": [{"quantity": {"$if": "exists(@.quantity)", "value": E("@.quantity"), "unit": "1", "system": UCUM, "code": "1"},
                      "itemCodeableConcept": {"coding": [{"$if": "exists(@.snomedCode)", "system": SCT, "code": E("@.snomedCode")}],
                                              "text": E("@.name")}}],
    "occurrenceDateTime": E("@.dateTime"),
}})
R({"key": "sickLeave", "_comment": "Stand-in for the DHP SickLeaveCarePlan, referenced by its number (open question 12).",
   "for": "$.sickLeaveCertificates.certificates", "profile": P["sickleave"], "resource": {
       "resourceType": "CarePlan",
       "identifier": [{"system": "https://dhp.uz/fhir/core/sid/doc/uz/sickleave", "value": E("@.number")}],
       "status": E("lookup('requestStatus', string(exists(@.closedOn)))"),
       "intent": "order",
       "subject": SUBJ, "encounter": ENC,
       "period": {"start": E("@.openedOn"), "end": E("@.closedOn")},
   }})

# =====================================================================================================
# (a diagnostic result with both value and valueText: valueQuantity + note; FHIR allows one value[x])

# =====================================================================================================
def sec(key, title, code, entry, input_expr=None, **kw):
    s = {"key": key, "input": input_expr or f"$.{key}", "title": title, "code": code, "entry": entry}
    s.update(kw)
    return s


def refs(*rules):
    return [{"$refs": r} for r in rules]


sections = [
    sec("admissionInformation",
        {"en": "Admission, discharge and diagnoses", "uz": "Pasport qismi: yotqizish va chiqarish",
         "ru": "Паспортная часть: поступление и выписка"},
        cc(LOINC, "46241-6", "Hospital admission diagnosis Narrative - Reported"),
        [{"$ref": "patient"}, {"$ref": "encounter"}, {"$ref": "organization"}]
        + refs("referringOrganization", "transferOrganization", "admissionLaboratory", "allergy", "admissionDiagnosis",
               "clinicalDiagnosis", "finalDiagnosis", "laborComplication", "postpartumComplication", "operation")),
    sec("medicalAndObstetricHistory",
        {"en": "Medical and obstetric history", "uz": "Anamnez: umumiy va akusherlik", "ru": "Анамнез: общий и акушерский"},
        cc(LOINC, "11329-0", "History general Narrative - Reported"),
        refs("spouse", "obstetricHistory", "generalDisease", "gynecologicalDisease", "previousOperation",
             "historyQuestionnaireResponse")),
    sec("epidemiologicalHistory",
        {"en": "Epidemiological history", "uz": "Epidemiologik anamnez", "ru": "Эпидемиологический анамнез"},
        {"coding": [coding(LOINC, "LP269982-7")]},
        refs("historyQuestionnaireResponse")),
    sec("currentPregnancy",
        {"en": "Course of this pregnancy", "uz": "Mazkur homiladorlikning kechishi va asoratlari",
         "ru": "Течение и осложнения данной беременности"},
        cc(LOINC, "65869-0", "Pregnancy complication"),
        refs("currentPregnancyQuestionnaireResponse", "generalExamination", "pregnancyComplication")),
    sec("obstetricExamination",
        {"en": "Obstetric examination and fetal assessment", "uz": "Akusherlik tekshiruvi va homilani baholash",
         "ru": "Акушерское исследование и оценка плода"},
        {"coding": [coding(SCT, "171425002")]},
        refs("generalExamination", "pelvimetry", "fetalAssessment") + roles_of("$.obstetricExamination.examinedBy")),
    sec("laborCourse",
        {"en": "Course of labour", "uz": "Tug'ruqning kechishi", "ru": "Течение родов"},
        cc(SCT, "289909005", "Labor"),
        refs("labor", "laborSupport", "laborAnalgesia") + roles_of("$.laborCourse.attendedBy")),
    sec("newbornDeliveryRecord",
        {"en": "Newborn delivery record", "uz": "Chaqaloqning tug'ilishi", "ru": "Сведения о новорождённом"},
        cc(LOINC, "57075-4", "Newborn delivery information"),
        refs("newborn", "birthObservation", "eyeProphylaxis", "deliveryObservation", "placentalDelivery", "birthOutcomeSummary")
        + roles_of("$.newbornDeliveryRecord.attendedBy")),
    sec("postpartumPeriod",
        {"en": "Postpartum period", "uz": "Tug'ruqdan keyingi davr", "ru": "Послеродовый период"},
        cc(SCT, "86569001", "Postpartum state"),
        refs("postpartumObservation")),
    sec("medicationOrders",
        {"en": "Medication orders", "uz": "Dori vositalarini tayinlash", "ru": "Лист назначений"},
        cc(LOINC, "10160-0", "History of Medication use Narrative"),
        refs("medicationRequest", *[f"medicationAdministration{i}" for i in range(MAX_NESTED)])),
    sec("diagnosticOrders",
        {"en": "Ordered examinations", "uz": "Tayinlangan tekshiruvlar", "ru": "Назначенные исследования"},
        cc(LOINC, "18776-5", "Plan of care note"),
        refs("diagnosticOrder", *[f"diagnosticResult{i}" for i in range(MAX_NESTED)])),
    sec("procedureOrders",
        {"en": "Ordered procedures", "uz": "Tayinlangan muolajalar", "ru": "Назначенные процедуры"},
        cc(LOINC, "29554-3", "Procedure Narrative"),
        refs("procedureOrder", "orderedProcedure")),
    sec("usedMaterials",
        {"en": "Used materials", "uz": "Ishlatilgan materiallar", "ru": "Использованные материалы"},
        cc(LOINC, "46264-8", "History of medical device use"),
        refs("usedMaterial")),
    sec("sickLeaveCertificates",
        {"en": "Sick-leave certificates", "uz": "Mehnatga layoqatsizlik varaqalari", "ru": "Листки нетрудоспособности"},
        cc(SCT, "224459001", "On sick leave from work"),
        refs("sickLeave")),
    sec("responsiblePersons",
        {"en": "Responsible persons", "uz": "Mas'ul shaxslar", "ru": "Ответственные лица"},
        cc(LOINC, "51899-3", "Details Document"),
        [role(DOCTOR), role("$.responsiblePersons.midwife"), role("$.responsiblePersons.headOfDepartment")]),
]

# =====================================================================================================
LC = "$.laborCourse"
LABOR_END = f"coalesce({LC}.laborEnd, $.newbornDeliveryRecord.placenta.deliveredAt)"


def same_minutes(a, b, d):
    """d (whole minutes) is the elapsed time from a to b rounded down or up: minutesBetween floors, and
    -minutesBetween(b, a) is the ceiling; -d is written as number(concat('-', string(d))) (no arithmetic)."""
    return f"(minutesBetween({a}, {b}) == {d} || minutesBetween({b}, {a}) == number(concat('-', string({d}))))"


LAST = f"string(@index) == lookup('lastIndex', string(count({N})))"
checks = [
    {"assert": f"!exists({DIS}) || instant({DIS}) >= instant({ADM})",
     "path": "admissionInformation.dischargeDateTime",
     "message": "dischargeDateTime must not be earlier than admissionDateTime"},
    {"assert": "!exists($.admissionInformation.transferredTo) || $.admissionInformation.hospitalizationOutcome == 'other-hcf'",
     "path": "admissionInformation.transferredTo",
     "message": "transferredTo is allowed only with hospitalizationOutcome = other-hcf (transferred to another facility)"},
    {"assert": f"!exists({LC}.onset) || !exists({LC}.laborEnd) || instant({LC}.laborEnd) >= instant({LC}.onset)",
     "path": "laborCourse.laborEnd",
     "message": "laborEnd must not be earlier than the onset of labour"},
    {"_comment": "Durations vs time stamps: total = onset → laborEnd (or placenta.deliveredAt); 1st = onset → fullDilationAt; 2nd = fullDilationAt → birth of the last newborn (array order = birth order); 3rd = last birth → laborEnd. Tolerance: the duration must be the elapsed time rounded down or up to whole minutes.",
     "assert": f"!exists({LC}.totalDurationMin) || !exists({LC}.onset) || !exists({LABOR_END}) || {same_minutes(LC + '.onset', LABOR_END, LC + '.totalDurationMin')}",
     "path": "laborCourse.totalDurationMin",
     "message": f"totalDurationMin ({{{{{LC}.totalDurationMin}}}}) does not agree with onset → end of labour ({{{{minutesBetween({LC}.onset, {LABOR_END})}}}} min)"},
    {"assert": f"!exists({LC}.firstStageMin) || !exists({LC}.onset) || !exists({LC}.fullDilationAt) || {same_minutes(LC + '.onset', LC + '.fullDilationAt', LC + '.firstStageMin')}",
     "path": "laborCourse.firstStageMin",
     "message": f"firstStageMin ({{{{{LC}.firstStageMin}}}}) does not agree with onset → fullDilationAt ({{{{minutesBetween({LC}.onset, {LC}.fullDilationAt)}}}} min)"},
    {"for": N,
     "assert": f"!({LAST}) || !exists({LC}.secondStageMin) || !exists({LC}.fullDilationAt) || {same_minutes(LC + '.fullDilationAt', '@.birthDateTime', LC + '.secondStageMin')}",
     "path": "laborCourse.secondStageMin",
     "message": f"secondStageMin ({{{{{LC}.secondStageMin}}}}) does not agree with fullDilationAt → birth of the last newborn, newbornDeliveryRecord.newborns[{{{{@index}}}}] ({{{{minutesBetween({LC}.fullDilationAt, @.birthDateTime)}}}} min)"},
    {"for": N,
     "assert": f"!({LAST}) || !exists({LC}.thirdStageMin) || !exists({LABOR_END}) || {same_minutes('@.birthDateTime', LABOR_END, LC + '.thirdStageMin')}",
     "path": "laborCourse.thirdStageMin",
     "message": f"thirdStageMin ({{{{{LC}.thirdStageMin}}}}) does not agree with the birth of the last newborn, newbornDeliveryRecord.newborns[{{{{@index}}}}] → end of labour ({{{{minutesBetween(@.birthDateTime, {LABOR_END})}}}} min)"},
    {"_comment": "Counts in unary (see the top-level _comment): #newborns with outcome live birth <= liveBirths <= that + #newborns without an outcome.",
     "assert": f"!exists({S}.liveBirths) || ({c(LIVE)} <= lookup('unary', string({S}.liveBirths)) && lookup('unary', string({S}.liveBirths)) <= {c(LIVE_OR_UNKNOWN)})",
     "path": "newbornDeliveryRecord.outcomeSummary.liveBirths",
     "message": f"liveBirths ({{{{{S}.liveBirths}}}}) does not agree with newborns[].outcome (newborns without an outcome may count either way)"},
    {"assert": f"!exists({S}.stillbirths) || ({c(STILL)} <= lookup('unary', string({S}.stillbirths)) && lookup('unary', string({S}.stillbirths)) <= {c(STILL_OR_UNKNOWN)})",
     "path": "newbornDeliveryRecord.outcomeSummary.stillbirths",
     "message": f"stillbirths ({{{{{S}.stillbirths}}}}) does not agree with newborns[].outcome (newborns without an outcome may count either way)"},
    {"assert": f"!exists({S}.liveBirths) || !exists({S}.stillbirths) || concat(lookup('unary', string({S}.liveBirths)), lookup('unary', string({S}.stillbirths))) == {c(ALL)}",
     "path": "newbornDeliveryRecord.outcomeSummary",
     "message": f"liveBirths + stillbirths ({{{{{S}.liveBirths}}}} + {{{{{S}.stillbirths}}}}) must equal the number of newborns ({{{{count({N})}}}})"},
    {"for": "$.sickLeaveCertificates.certificates",
     "assert": "!exists(@.openedOn) || !exists(@.closedOn) || instant(@.closedOn) >= instant(@.openedOn)",
     "path": "sickLeaveCertificates.certificates[{{@index}}].closedOn",
     "message": "closedOn must not be earlier than openedOn"},
    {"_comment": "Engine workaround limit (see resources medicationAdministration0..): reject rather than drop.",
     "for": "$.medicationOrders.prescriptions",
     "assert": f"!exists(@.administrations) || @index < {MAX_NESTED}",
     "path": "medicationOrders.prescriptions[{{@index}}].administrations",
     "message": f"administrations are supported on the first {MAX_NESTED} prescriptions only; send further administrations in a separate document"},
    {"for": "$.diagnosticOrders.orders",
     "assert": f"!exists(@.results) || @index < {MAX_NESTED}",
     "path": "diagnosticOrders.orders[{{@index}}].results",
     "message": f"results are supported on the first {MAX_NESTED} orders only; send further results in a separate document"},
]

definition = {
    "form": "096",
    "schema": "form-096.schema.json",
    "_comment": [
        "Form 096 (maternity / childbirth record) → FHIR R5 document, per ../shared/spec/forms/README.md §4.",
        "Counting without arithmetic: outcome-summary checks and defaults build counts in unary: concat(lookup('<x>Mark', newborns[i]…)) for i < %d gives one '1' per matching newborn; tables.unary turns a number into the same form, and unary strings compare like numbers." % MAX_NEWBORNS,
        "Labour durations must equal the elapsed time between the time stamps rounded down or up to whole minutes (no wider tolerance: the expression language has no arithmetic).",
    ],
    "title": {"en": "Form 096 - Maternity Medical Record", "uz": "096-shakl - Tug'ruq tibbiy kartasi",
              "ru": "Форма 096 - Медицинская карта родов"},
    "compositionProfile": INT_SD + "form-096-maternity-medical-record-composition",
    "tables": tables,
    "references": [{"schemaRef": "#/$defs/practitionerRef", "in": "$.practitioners", "key": "pinfl",
                    "message": "practitioner {{value}} is not listed in practitioners"}],
    "unique": [{"in": "$.practitioners", "key": "pinfl", "message": "practitioner {{value}} is listed more than once"}],
    "checks": checks,
    "resources": resources,
    "composition": {
        "identifier": [
            {"system": "https://dhp.uz/fhir/core/sid/doc/uz/form-number", "value": "096"},
            {"$if": "exists($.admissionInformation.medicalRecordNumber)",
             "system": "https://dhp.uz/fhir/core/sid/doc/uz/medical-record-number",
             "value": E("$.admissionInformation.medicalRecordNumber")},
        ],
        "type": cc(LOINC, "34117-2", "History and physical note"),
        "category": [cc(INT_CS + "document-category-cs", "form-096", "Birth medical record")],
        "subject": [SUBJ],
        "encounter": ENC,
        "date": E(f"coalesce($.documentDateTime, {DIS}, {ADM})"),
        "author": [role(DOCTOR), role("$.responsiblePersons.midwife")],
        "custodian": {"$ref": "organization"},
    },
    "sections": sections,
}

def dump(v, ind=0, width=120):
    """JSON with small objects / arrays kept on one line (readable, diff-friendly)."""
    flat = json.dumps(v, ensure_ascii=False)
    if not isinstance(v, (dict, list)) or len(flat) + ind <= width:
        return flat
    pad, inner = " " * ind, " " * (ind + 2)
    if isinstance(v, dict):
        items = [f"{inner}{json.dumps(k, ensure_ascii=False)}: {dump(x, ind + 2, width)}" for k, x in v.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    items = [inner + dump(x, ind + 2, width) for x in v]
    return "[\n" + ",\n".join(items) + "\n" + pad + "]"


with open(OUT, "w", encoding="utf-8") as f:
    f.write(dump(definition) + "\n")
print("wrote", OUT)
