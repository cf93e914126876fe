#!/usr/bin/env python3
"""Writes the Form 096 test inputs (variants of example.json / minimal.json, the spec instances) to tests/data/form-096/."""
import copy
import json
import os

D = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
EX = json.load(open(os.path.join(D, "example.json")))
MIN = json.load(open(os.path.join(D, "minimal.json")))
os.makedirs(D + "/invalid", exist_ok=True)


def w(name, doc, sub=""):
    with open(f"{D}/{sub}{name}.json", "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=2)
        f.write("\n")


DOC = "41508851240072"
MW = "42303901260115"
HEAD = "30907781240039"

# --- twins: two live births, second twin breech; outcome summary counts derived from newborns ----------
t = copy.deepcopy(EX)
t["documentId"] = "0e5b3a1c-7a43-4f0e-9a55-3c1d2b4e5f60"
t["admissionInformation"]["medicalRecordNumber"] = "MRN-096-2026-001401"
t["admissionInformation"]["admissionDiagnoses"] = [{"icd10": "O30.0", "text": "Egizaklar bilan homiladorlik, 38 hafta", "recordedDate": "2026-05-14"}]
t["admissionInformation"]["finalDiagnoses"] = [{"icd10": "O84.0", "text": "Ko'p homilali o'z-o'zidan tug'ruq", "recordedDate": "2026-05-14", "clinicalStatus": "resolved"}]
t["laborCourse"].update({
    "onset": "2026-05-14T06:10:00+05:00", "membranesRupturedAt": "2026-05-14T10:05:00+05:00",
    "fullDilationAt": "2026-05-14T12:05:00+05:00", "pushingStartedAt": "2026-05-14T12:10:00+05:00",
    "totalDurationMin": 387, "firstStageMin": 355, "secondStageMin": 22, "thirdStageMin": 10,
    "laborEnd": "2026-05-14T12:37:00+05:00"})
t["laborCourse"]["laborSupport"]["dateTime"] = "2026-05-14T10:30:00+05:00"
t["laborCourse"]["analgesia"][0]["dateTime"] = "2026-05-14T10:45:00+05:00"
nb1 = copy.deepcopy(EX["newbornDeliveryRecord"]["newborns"][0])
nb1.update({"birthDateTime": "2026-05-14T12:20:00+05:00", "healthCardNumber": "NB-2026-001401-1", "weightG": 2850, "lengthCm": 49,
            "headCircumferenceCm": 34, "chestCircumferenceCm": 32, "apgar1Min": 8, "apgar5Min": 9})
nb1["eyeProphylaxis"]["dateTime"] = "2026-05-14T12:28:00+05:00"
nb2 = {"birthDateTime": "2026-05-14T12:27:00+05:00", "gender": "female", "healthCardNumber": "NB-2026-001401-2",
       "name": {"family": "Yusupova"}, "outcome": "281050002", "presentation": "chr-0044-0002", "weightG": 2700,
       "lengthCm": 48, "headCircumferenceCm": 33, "chestCircumferenceCm": 31, "apgar1Min": 7, "apgar5Min": 8,
       "apgarAssessment": "Qoniqarli moslashuv",
       "eyeProphylaxis": {"dateTime": "2026-05-14T12:32:00+05:00", "performer": MW}, "deliveredBy": DOC}
t["newbornDeliveryRecord"]["newborns"] = [nb1, nb2]
t["newbornDeliveryRecord"]["placenta"].update({"deliveredAt": "2026-05-14T12:37:00+05:00", "intervalFromBirthMin": 10})
t["newbornDeliveryRecord"]["outcomeSummary"] = {"postnatalDeaths": 0}
t["newbornDeliveryRecord"]["bloodLossMl"] = 450
t["admissionInformation"]["operations"][0]["dateTime"] = "2026-05-14T12:50:00+05:00"
w("twins", t)

# --- triplets: third newborn without outcome, a stillbirth; summary sent -------------------------------
tr = copy.deepcopy(t)
tr["documentId"] = "6f1d2c3b-4a59-4e68-8b7c-9d0e1f2a3b4c"
nb3 = {"birthDateTime": "2026-05-14T12:31:00+05:00", "gender": "unknown", "presentation": "chr-0044-0003", "weightG": 1900}
tr["newbornDeliveryRecord"]["newborns"][1]["outcome"] = "237364002"
tr["newbornDeliveryRecord"]["newborns"][1].pop("apgar1Min"); tr["newbornDeliveryRecord"]["newborns"][1].pop("apgar5Min")
tr["newbornDeliveryRecord"]["newborns"][1].pop("eyeProphylaxis")
tr["newbornDeliveryRecord"]["newborns"].append(nb3)
tr["laborCourse"].update({"secondStageMin": 26, "thirdStageMin": 6, "totalDurationMin": 387})
tr["newbornDeliveryRecord"]["placenta"]["intervalFromBirthMin"] = 6
tr["newbornDeliveryRecord"]["outcomeSummary"] = {"liveBirths": 2, "stillbirths": 1, "postnatalDeaths": 0}
w("triplets-stillbirth", tr)

# --- Russian, Cyrillic names, passport only, markup characters in free text -----------------------------
ru = copy.deepcopy(EX)
ru["documentId"] = "a7c9e1f3-5b7d-4f91-a3c5-e7f9b1d3f5a7"
ru["language"] = "ru"
ru["patient"] = {"passportNumber": "AC1234567", "name": {"family": "Юсупова", "given": "Мадина", "patronymic": "Рустамовна"},
                 "birthDate": "1997-06-21", "nationality": "44", "maritalStatus": "M",
                 "address": {"region": "1726", "district": "1726266", "text": "г. Ташкент, Юнусабадский р-н, кв. 4, д. 21, кв. 7"}}
ru["organization"]["name"] = "Ташкентский городской родильный комплекс № 4"
ru["practitioners"] = [
    {"pinfl": DOC, "name": {"family": "Расулова", "given": "Малика", "patronymic": "Баходировна"}, "positionCode": "2222.1", "positionText": "Врач акушер-гинеколог"},
    {"pinfl": MW, "name": {"family": "Турсунова", "given": "Нодира"}, "positionText": "Акушерка"},
    {"pinfl": HEAD, "name": {"family": "Алиев", "given": "Фарход", "patronymic": "Исмоилович"}, "positionCode": "1342.18"}]
ru["medicalAndObstetricHistory"]["spouse"] = {"name": {"family": "Юсупов", "given": "Жасур", "patronymic": "Алишерович"}, "phone": "+998935550143"}
ru["medicalAndObstetricHistory"]["previousPregnanciesNarrative"] = "2022 г.: срочные роды, мальчик 3300 г; Hb < 100 г/л & «анемия» — <b>без</b> осложнений.\nВторая строка."
ru["epidemiologicalHistory"]["notes"] = "Контактов с инфекционными больными не было; 'за рубеж' не выезжала."
ru["currentPregnancy"]["course"] = "Беременность протекала без осложнений (Hb > 110 г/л)."
ru["currentPregnancy"]["conditionOnArrival"] = "Состояние удовлетворительное."
ru["newbornDeliveryRecord"]["newborns"][0]["name"] = {"family": "Юсупов", "given": "Амир"}
ru["newbornDeliveryRecord"]["newborns"][0]["apgarAssessment"] = "Хорошая адаптация"
w("ru-cyrillic", ru)

# --- transfer to another facility; referring organization without tax id; unidentified patient ---------
tf = copy.deepcopy(EX)
tf["documentId"] = "b1c2d3e4-f5a6-4b7c-8d9e-0f1a2b3c4d5e"
tf["patient"] = {"temporaryMedicalRecordNumber": "TMP-2026-0042", "name": {"family": "Noma'lum", "given": "Ayol"}}
tf["admissionInformation"]["hospitalizationOutcome"] = "other-hcf"
tf["admissionInformation"]["transferredTo"] = {"name": "Respublika perinatal markazi", "taxId": "207654321"}
tf["admissionInformation"]["referringOrganization"] = {"name": "Tez tibbiy yordam brigadasi"}
tf["admissionInformation"].pop("ward"); tf["admissionInformation"].pop("laboratory")
tf["newbornDeliveryRecord"]["newborns"][0].pop("healthCardNumber")
tf["newbornDeliveryRecord"]["newborns"][0].pop("name")
w("transfer-unidentified", tf)

# --- required sections only, each with the least that gives it an entry -------------------------------
ro = {
    "form": "096",
    "patient": {"pinfl": "42106971230456", "name": {"family": "Karimova", "given": "Dilnoza"}},
    "organization": {"name": "Samarqand viloyat perinatal markazi", "taxId": "301234567"},
    "practitioners": [{"pinfl": DOC, "name": {"family": "Rasulova", "given": "Malika"}, "positionText": "Akusher-ginekolog"},
                      {"pinfl": MW, "name": {"family": "Tursunova", "given": "Nodira"}, "positionCode": "3222.1"},
                      {"pinfl": "31111111111111", "name": {"family": "Qodirov", "given": "Anvar"}, "positionCode": "2211.6"}],
    "admissionInformation": {"admissionDateTime": "2026-06-01T22:15:00+05:00", "hospitalizationOutcome": "mserv-0004-00004",
                             "roomNumber": "7"},
    "medicalAndObstetricHistory": {"spouse": {"phone": "+998901112233"}},
    "currentPregnancy": {"generalExamination": {"dateTime": "2026-06-01T22:30:00+05:00"}},
    "obstetricExamination": {"examinedBy": [MW]},
    "laborCourse": {"analgesia": [{"medication": {"text": "Promedol"}, "dateTime": "2026-06-02T01:00:00+05:00"}]},
    "newbornDeliveryRecord": {"newborns": [{"birthDateTime": "2026-06-02T03:05:00+05:00"}]},
    "postpartumPeriod": {"observations": [{"dateTime": "2026-06-02T09:00:00+05:00", "dietTable": 0}]},
    "responsiblePersons": {"attendingDoctor": DOC},
}
w("required-only", ro)

# --- repeated array items everywhere ------------------------------------------------------------------
rp = copy.deepcopy(EX)
rp["documentId"] = "c3d4e5f6-a7b8-4c9d-8e0f-1a2b3c4d5e6f"
ai = rp["admissionInformation"]
ai["allergies"] = [{"substance": "Penitsillin", "substanceSnomedCode": "764146007", "reaction": "Eshakemi"},
                   {"substance": "Yod"}]
ai["admissionDiagnoses"].append({"icd10": "O99.0", "text": "Anemiya"})
ai["postpartumComplications"] = [{"icd10": "O86.0", "text": "Oraliq chokining infeksiyasi", "onsetDateTime": "2026-05-16T08:00:00+05:00"},
                                  {"icd10": "O90.8"}]
ai["operations"].append({"name": "Epiziotomiya", "snomedCode": "85548006", "dateTime": "2026-05-14T09:40:00+05:00", "performer": DOC})
ai["laboratory"]["maternalDeathTiming"] = "chr-0042-0002"  # odd for a survivor, but it exercises the coded branch
h = rp["medicalAndObstetricHistory"]
h["previousNewbornWeightsG"] = [3300, 3550, 2980]
h["previousOperations"] = [{"name": "Appendektomiya", "dateTime": "2015-04-02T10:00:00+05:00"}, {"name": "Kesarcha kesish", "snomedCode": "11466000"}]
h["generalDiseases"].append({"icd10": "J45.9", "text": "Bronxial astma", "clinicalStatus": "remission"})
rp["currentPregnancy"]["pregnancyComplications"].append({"icd10": "O21.0", "text": "Yengil toksikoz", "clinicalStatus": "resolved"})
rp["currentPregnancy"]["generalExamination"]["bloodPressure"] = {"leftArm": {"systolic": 120, "diastolic": 80}}
rp["laborCourse"]["analgesia"].append({"medication": {"text": "Paratsetamol", "snomedCode": "387517004"}, "dateTime": "2026-05-14T07:30:00+05:00"})
rp["postpartumPeriod"]["observations"].append({"dateTime": "2026-05-17T08:00:00+05:00", "generalCondition": "Qoniqarli", "examinedBy": MW})
rx = rp["medicationOrders"]["prescriptions"]
rx[1]["administrations"] = [{"medication": {"text": "Temir (III) gidroksid polimaltozat"}, "dateTime": f"2026-05-1{d}T09:00:00+05:00",
                             "dose": {"value": 100, "unit": "mg"}, "performer": MW} for d in (5, 6, 7)]
rx.append({"number": "RX-096-2026-0413", "prescribedAt": "2026-05-14T10:15:00+05:00",
           "medication": {"text": "Oksitotsin", "snomedCode": "112115002"}, "dosageText": "10 XB mushak ichiga", "route": "78421000",
           "prescriber": DOC,
           "administrations": [{"medication": {"text": "Oksitotsin"}, "dateTime": "2026-05-14T09:49:00+05:00",
                                "dosageText": "10 XB m/i", "performer": MW}]})
do = rp["diagnosticOrders"]["orders"]
do[0]["results"] += [{"loincCode": "6690-2", "name": "Leykotsitlar", "dateTime": "2026-05-15T08:30:00+05:00", "value": 9.1, "unit": "10*9/L"},
                     {"name": "Qon surtmasi", "dateTime": "2026-05-15T08:30:00+05:00", "valueText": "O'zgarishsiz"},
                     {"loincCode": "777-3", "dateTime": "2026-05-15T08:30:00+05:00", "value": 210, "unit": "10*9/L", "valueText": "Me'yorda"}]
do.append({"name": "Siydikning umumiy tahlili", "orderedAt": "2026-05-15T07:00:00+05:00", "orderedBy": DOC,
           "results": [{"name": "Oqsil", "dateTime": "2026-05-15T10:00:00+05:00", "valueText": "Aniqlanmadi"}]})
do.append({"name": "Koagulogramma", "loincCode": "34714-6", "orderedAt": "2026-05-16T07:00:00+05:00"})
rp["procedureOrders"]["orders"].append({"name": "Kateterizatsiya", "snomedCode": "45211000", "orderedAt": "2026-05-14T08:00:00+05:00"})
rp["usedMaterials"]["items"].append({"name": "Kateter", "quantity": 1})
rp["sickLeaveCertificates"]["certificates"].append({"number": "SL-2026-220518", "openedOn": "2026-07-09"})
w("repeated-items", rp)

# --- maternal death, stillbirth -------------------------------------------------------------------------
dd = copy.deepcopy(EX)
dd["documentId"] = "d4e5f6a7-b8c9-4d0e-9f1a-2b3c4d5e6f70"
dd["admissionInformation"]["hospitalizationOutcome"] = "exp"
dd["admissionInformation"]["dischargeDateTime"] = "2026-05-14T13:20:00+05:00"
dd["admissionInformation"]["bedDays"] = 0.4
dd["admissionInformation"]["laboratory"]["maternalDeathTiming"] = "chr-0042-0003"
dd["admissionInformation"]["postpartumComplications"] = [{"icd10": "O72.0", "text": "Yo'ldosh davridagi qon ketish"}]
dd["newbornDeliveryRecord"]["newborns"][0].update({"outcome": "237364002"})
for k in ("apgar1Min", "apgar5Min", "apgarAssessment", "eyeProphylaxis"):
    dd["newbornDeliveryRecord"]["newborns"][0].pop(k)
dd["newbornDeliveryRecord"]["outcomeSummary"] = {"liveBirths": 0, "stillbirths": 1}
dd["newbornDeliveryRecord"]["bloodLossMl"] = 2500
dd["postpartumPeriod"]["observations"] = [{"dateTime": "2026-05-14T11:00:00+05:00", "generalCondition": "Og'ir", "examinedBy": DOC}]
for k in ("medicationOrders", "diagnosticOrders", "procedureOrders", "usedMaterials", "sickLeaveCertificates"):
    dd.pop(k)
w("maternal-death-stillbirth", dd)

# --- English, history only as narrative, epidemiological notes, no discharge ----------------------------
en = copy.deepcopy(MIN)
en["language"] = "en"
en["medicalAndObstetricHistory"] = {"previousPregnanciesNarrative": "First pregnancy.", "recordedAt": "2026-05-14T04:00:00+05:00"}
en["epidemiologicalHistory"] = {"notes": "No contacts."}
en["currentPregnancy"] = {"pregnancyComplications": [{"icd10": "O13"}]}
en["obstetricExamination"] = {"pelvimetry": {"conjugataVeraCm": 11}, "examinedAt": "2026-05-14T04:10:00+05:00"}
en["laborCourse"] = {"laborSupport": {"effectiveness": "chr-0049-0002"}, "laborEnd": "2026-05-14T10:00:00+05:00"}
en["newbornDeliveryRecord"] = {"newborns": [{"birthDateTime": "2026-05-14T09:48:00+05:00", "outcome": "281050002", "pinfl": "52105260000011"}],
                               "placenta": {"membranesIntegrity": "chr-0048-0002"}, "outcomeSummary": {"liveBirths": 1}}
w("en-history-narrative", en)

# --- 22 of 25 prescriptions with administrations, 22 of 26 diagnostic orders with results ----------------
# (one nested-for rule each: every item must become a resource, with request / basedOn its own order)
mo = copy.deepcopy(EX)
mo["documentId"] = "e5f6a7b8-c9d0-4e1f-8a2b-3c4d5e6f7081"
DRUGS = [("Paratsetamol", "387517004"), ("Oksitotsin", "112115002"), ("Temir (III) gidroksid polimaltozat", None),
         ("Sefazolin", None), ("Metronidazol", None), ("Ibuprofen", None), ("Drotaverin", None)]
mo["medicationOrders"]["prescriptions"] = []
for i in range(25):
    text, code = DRUGS[i % len(DRUGS)]
    med = {"text": text, **({"snomedCode": code} if code else {})}
    rx = {"number": f"RX-096-2026-{1000 + i}", "prescribedAt": f"2026-05-{14 + i % 3}T{8 + i % 10:02d}:00:00+05:00",
          "medication": med, "dosageText": f"Tayinlash {i + 1}", "route": "26643006", "prescriber": DOC}
    if i % 8 != 5:  # prescriptions 5, 13, 21 without administrations: the outer index must still match
        rx["administrations"] = [{"medication": dict(med), "dateTime": f"2026-05-{14 + i % 3}T{8 + i % 10:02d}:{10 + 15 * j:02d}:00+05:00",
                                  "dose": {"value": 10 * (i + 1) + j, "unit": "mg"}, "performer": MW} for j in range(1 + i % 3)]
    mo["medicationOrders"]["prescriptions"].append(rx)
TESTS = [("718-7", "Gemoglobin", 106, "g/L"), ("6690-2", "Leykotsitlar", 9.1, "10*9/L"), ("777-3", "Trombotsitlar", 210, "10*9/L"),
         (None, "Siydikda oqsil", None, None)]
mo["diagnosticOrders"]["orders"] = []
for i in range(26):
    o = {"name": f"Tekshiruv {i + 1}", "orderedAt": f"2026-05-{14 + i % 3}T07:{i:02d}:00+05:00", "orderedBy": DOC}
    if i % 7 != 3:  # orders 3, 10, 17, 24 not performed
        o["results"] = []
        for j in range(1 + i % 2):
            code, name, value, unit = TESTS[(i + j) % len(TESTS)]
            r = {**({"loincCode": code} if code else {}), "name": name, "dateTime": f"2026-05-{14 + i % 3}T09:{i:02d}:{j:02d}+05:00"}
            r.update({"value": value, "unit": unit} if value is not None else {"valueText": f"Aniqlanmadi ({i + 1})"})
            o["results"].append(r)
    mo["diagnosticOrders"]["orders"].append(o)
w("many-orders", mo)

# --- labour durations off by one minute either way (the checks allow ±1 min) ---------------------------
ob = copy.deepcopy(EX)
ob["documentId"] = "f6a7b8c9-d0e1-4f2a-9b3c-4d5e6f708192"
ob["laborCourse"].update({"fullDilationAt": "2026-05-14T09:20:40+05:00",  # onset → 590 min 40 s: 591 rounds up
                          "totalDurationMin": 629, "firstStageMin": 591, "secondStageMin": 26, "thirdStageMin": 9})
w("durations-off-by-one", ob)

# =========================== invalid inputs (semantic checks) ===========================================
def inv(name, mutate, base=EX):
    d = copy.deepcopy(base)
    mutate(d)
    w(name, d, "invalid/")


inv("discharge-before-admission", lambda d: d["admissionInformation"].update(dischargeDateTime="2026-05-14T03:00:00+05:00"))
inv("transferred-to-without-other-hcf", lambda d: d["admissionInformation"].update(transferredTo={"name": "X", "taxId": "123456789"}))
inv("live-births-disagree", lambda d: d["newbornDeliveryRecord"]["outcomeSummary"].update(liveBirths=2, stillbirths=0))
inv("stillbirths-disagree", lambda d: d["newbornDeliveryRecord"]["outcomeSummary"].update(liveBirths=1, stillbirths=1))
inv("outcome-sum-disagree", lambda d: d["newbornDeliveryRecord"]["outcomeSummary"].update(liveBirths=1, stillbirths=1), tr)
inv("labor-durations-disagree", lambda d: d["laborCourse"].update(totalDurationMin=600, firstStageMin=500, secondStageMin=40, thirdStageMin=30))
inv("twins-second-stage-to-first-twin", lambda d: d["laborCourse"].update(secondStageMin=15, thirdStageMin=17), t)
inv("labor-stages-off-by-two", lambda d: d["laborCourse"].update(firstStageMin=588, secondStageMin=30))
inv("labor-end-before-onset", lambda d: d["laborCourse"].update(laborEnd="2026-05-13T22:00:00+05:00", totalDurationMin=None) or d["laborCourse"].pop("totalDurationMin") or d["laborCourse"].pop("thirdStageMin"))
inv("unknown-practitioner", lambda d: d["responsiblePersons"].update(midwife="12345678901234"))
inv("duplicate-practitioner", lambda d: d["practitioners"].append(copy.deepcopy(d["practitioners"][0])))
inv("sick-leave-closed-before-opened", lambda d: d["sickLeaveCertificates"]["certificates"][0].update(closedOn="2026-05-01"))
print("ok")
