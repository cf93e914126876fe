//! Every text of the signing iframe, the login popup and the development oneID, in Uzbek (Latin),
//! Russian and English. The locale comes from the signing session (`locale`), else `?lang=`, else
//! `Accept-Language`, else Uzbek.

/// The texts of one language.
#[derive(Debug)]
pub struct T {
    pub lang: &'static str,
    pub title: &'static str,
    pub version: &'static str,
    pub hash: &'static str,
    pub expected_signer: &'static str,
    pub role: &'static str,
    pub sign_in: &'static str,
    pub sign_in_hint: &'static str,
    pub open_in_tab: &'static str,
    pub waiting: &'static str,
    pub signing_as: &'static str,
    pub name: &'static str,
    pub pinfl: &'static str,
    pub consent: &'static str,
    pub sign: &'static str,
    pub signing: &'static str,
    pub cancel: &'static str,
    pub done_title: &'static str,
    pub done_text: &'static str,
    pub cancelled_title: &'static str,
    pub cancelled_text: &'static str,
    pub expired_title: &'static str,
    pub expired_text: &'static str,
    pub failed_title: &'static str,
    pub refused_title: &'static str,
    pub login_done_title: &'static str,
    pub login_done_text: &'static str,
    pub login_failed_title: &'static str,
    pub close_window: &'static str,
    pub dev_title: &'static str,
    pub dev_intro: &'static str,
    pub dev_other: &'static str,
    pub dev_surname: &'static str,
    pub dev_given: &'static str,
    pub dev_patronymic: &'static str,
    pub dev_login: &'static str,
    pub error_code: &'static str,
}

pub const UZ: T = T {
    lang: "uz",
    title: "Hujjatni imzolash",
    version: "Versiya",
    hash: "SHA-256",
    expected_signer: "Imzolovchi",
    role: "Lavozim",
    sign_in: "OneID orqali kirish",
    sign_in_hint: "OneID kirish oynasi alohida oynada ochiladi.",
    open_in_tab: "Oyna ochilmadimi? Kirishni yangi varaqda oching",
    waiting: "OneID orqali kirish kutilmoqda…",
    signing_as: "Siz quyidagi shaxs sifatida imzolaysiz",
    name: "F.I.Sh.",
    pinfl: "JShShIR",
    consent: "Men ushbu hujjatni (yuqorida ko'rsatilgan versiya va SHA-256) o'qib chiqdim va uni elektron imzom bilan imzolayman.",
    sign: "Imzolash",
    signing: "Imzolanmoqda…",
    cancel: "Bekor qilish",
    done_title: "Hujjat imzolandi",
    done_text: "Imzolangan versiya:",
    cancelled_title: "Imzolash bekor qilindi",
    cancelled_text: "Ushbu imzolash seansi bekor qilindi. Qayta imzolash uchun tizimda yangisini boshlang.",
    expired_title: "Imzolash seansi muddati tugadi",
    expired_text: "Xavfsizlik uchun imzolash havolasi bir martalik va qisqa muddatli. Tizimda imzolashni qaytadan boshlang.",
    failed_title: "Imzolab bo'lmadi",
    refused_title: "So'rov rad etildi",
    login_done_title: "Siz tizimga kirdingiz",
    login_done_text: "Hujjatga qayting va uni imzolang. Bu oyna o'zi yopiladi.",
    login_failed_title: "Kirish muvaffaqiyatsiz",
    close_window: "Oynani yopish",
    dev_title: "oneID (ishlab chiqish uchun)",
    dev_intro: "Bu oneID o'rnini bosuvchi ishlab chiqish vositasi: sinov shifokorini tanlang. Ishlab chiqarish rejimida mavjud emas.",
    dev_other: "Boshqa shaxs",
    dev_surname: "Familiya",
    dev_given: "Ism",
    dev_patronymic: "Otasining ismi",
    dev_login: "Kirish",
    error_code: "Xato kodi",
};

pub const RU: T = T {
    lang: "ru",
    title: "Подписание документа",
    version: "Версия",
    hash: "SHA-256",
    expected_signer: "Подписант",
    role: "Должность",
    sign_in: "Войти через OneID",
    sign_in_hint: "Вход в OneID откроется в отдельном окне.",
    open_in_tab: "Окно не открылось? Откройте вход в новой вкладке",
    waiting: "Ожидание входа через OneID…",
    signing_as: "Вы подписываете как",
    name: "Ф.И.О.",
    pinfl: "ПИНФЛ",
    consent: "Я прочитал(а) этот документ (версия и SHA-256 указаны выше) и подписываю его своей электронной подписью.",
    sign: "Подписать",
    signing: "Подписание…",
    cancel: "Отменить",
    done_title: "Документ подписан",
    done_text: "Подписанная версия:",
    cancelled_title: "Подписание отменено",
    cancelled_text: "Этот сеанс подписания отменён. Чтобы подписать, начните новый в своей системе.",
    expired_title: "Срок сеанса подписания истёк",
    expired_text: "Ссылка на подписание одноразовая и действует недолго. Начните подписание в своей системе заново.",
    failed_title: "Подписать не удалось",
    refused_title: "Запрос отклонён",
    login_done_title: "Вы вошли",
    login_done_text: "Вернитесь к документу, чтобы подписать его. Это окно закроется само.",
    login_failed_title: "Вход не удался",
    close_window: "Закрыть окно",
    dev_title: "oneID (для разработки)",
    dev_intro: "Заменитель oneID для разработки: выберите тестового врача. В рабочем режиме недоступен.",
    dev_other: "Другой человек",
    dev_surname: "Фамилия",
    dev_given: "Имя",
    dev_patronymic: "Отчество",
    dev_login: "Войти",
    error_code: "Код ошибки",
};

pub const EN: T = T {
    lang: "en",
    title: "Sign the document",
    version: "Version",
    hash: "SHA-256",
    expected_signer: "Signer",
    role: "Role",
    sign_in: "Sign in with oneID",
    sign_in_hint: "The oneID login opens in a separate window.",
    open_in_tab: "No window opened? Open the login in a new tab",
    waiting: "Waiting for the oneID login…",
    signing_as: "You are signing as",
    name: "Name",
    pinfl: "PINFL",
    consent: "I have read this document (the version and SHA-256 shown above) and sign it with my electronic signature.",
    sign: "Sign",
    signing: "Signing…",
    cancel: "Cancel",
    done_title: "The document is signed",
    done_text: "Signed version:",
    cancelled_title: "Signing cancelled",
    cancelled_text: "This signing session was cancelled. To sign, start a new one in your hospital system.",
    expired_title: "The signing session has expired",
    expired_text: "For your safety a signing link works once and only for a short time. Start signing again in your hospital system.",
    failed_title: "The document could not be signed",
    refused_title: "Request refused",
    login_done_title: "You are signed in",
    login_done_text: "Return to the document to sign it. This window closes itself.",
    login_failed_title: "The login did not succeed",
    close_window: "Close this window",
    dev_title: "oneID (development)",
    dev_intro: "A development stand-in for oneID: pick a test practitioner. It does not exist in production mode.",
    dev_other: "Another person",
    dev_surname: "Surname",
    dev_given: "Given name",
    dev_patronymic: "Patronymic",
    dev_login: "Log in",
    error_code: "Error code",
};

/// `uz`, `ru` or `en` (anything else, e.g. `uz-Latn` or `ru-RU`, by its first subtag; default Uzbek).
pub fn texts(locale: &str) -> &'static T {
    match normalize(locale) {
        "ru" => &RU,
        "en" => &EN,
        _ => &UZ,
    }
}

pub fn normalize(locale: &str) -> &'static str {
    let l = locale.trim().to_ascii_lowercase();
    match l.split(['-', '_']).next().unwrap_or("") {
        "ru" => "ru",
        "en" => "en",
        _ => "uz",
    }
}

/// Is this a locale the service speaks (for validating the API's `locale`)?
pub fn supported(locale: &str) -> bool {
    let l = locale.trim().to_ascii_lowercase();
    matches!(l.split(['-', '_']).next().unwrap_or(""), "uz" | "ru" | "en")
}

/// The first supported language of an `Accept-Language` header.
pub fn from_accept_language(h: Option<&str>) -> &'static str {
    h.unwrap_or("")
        .split(',')
        .map(|p| p.split(';').next().unwrap_or("").trim())
        .find(|l| supported(l))
        .map(normalize)
        .unwrap_or("uz")
}

/// The message for a session error code, in one language.
pub fn error_message(locale: &str, code: &str) -> &'static str {
    let l = normalize(locale);
    let pick = |uz: &'static str, ru: &'static str, en: &'static str| match l {
        "ru" => ru,
        "en" => en,
        _ => uz,
    };
    match code {
        "signer_mismatch" => pick(
            "Siz boshqa shaxs sifatida kirdingiz: bu hujjatni faqat tizim ko'rsatgan shifokor imzolashi mumkin.",
            "Вы вошли как другой человек: этот документ может подписать только врач, указанный системой.",
            "You logged in as a different person: only the practitioner named by the hospital system may sign this document.",
        ),
        "login_cancelled" => pick(
            "Kirish bekor qilindi. Qaytadan urinib ko'ring.",
            "Вход отменён. Попробуйте ещё раз.",
            "The login was cancelled. Try again.",
        ),
        "state_mismatch" => pick(
            "Kirish javobi ushbu brauzerga tegishli emas yoki eskirgan. Hujjat sahifasidan qaytadan kiring.",
            "Ответ входа не относится к этому браузеру или устарел. Войдите заново со страницы документа.",
            "The login answer does not belong to this browser or is stale. Sign in again from the document page.",
        ),
        "idp_unavailable" => pick(
            "OneID hozir javob bermayapti. Birozdan so'ng qaytadan urinib ko'ring.",
            "OneID сейчас не отвечает. Попробуйте чуть позже.",
            "oneID is not answering right now. Try again in a moment.",
        ),
        "idp_rejected" => pick(
            "OneID kirishni rad etdi. Qaytadan urinib ko'ring.",
            "OneID отклонил вход. Попробуйте ещё раз.",
            "oneID refused the login. Try again.",
        ),
        "identity_incomplete" => pick(
            "OneID to'liq shaxs ma'lumotlarini (JShShIR va ism) bermadi.",
            "OneID не передал полные данные личности (ПИНФЛ и имя).",
            "oneID did not give a complete identity (PINFL and name).",
        ),
        "auth_method_not_allowed" => pick(
            "Bu kirish usuli imzolash uchun yetarli emas. Boshqa usul bilan kiring (masalan, E-IMZO yoki Mobile-ID).",
            "Этот способ входа недостаточен для подписания. Войдите другим способом (например, E-IMZO или Mobile-ID).",
            "This login method is not enough for signing. Log in another way (for example E-IMZO or Mobile-ID).",
        ),
        "launch_used" => pick(
            "Bu imzolash havolasi allaqachon ishlatilgan. Havola bir martalik: tizimda imzolashni qaytadan boshlang.",
            "Эта ссылка на подписание уже использована. Ссылка одноразовая: начните подписание в системе заново.",
            "This signing link has already been used. A link works once: start signing again in your hospital system.",
        ),
        "launch_expired" | "session_expired" => pick(
            "Imzolash seansi muddati tugadi. Tizimda imzolashni qaytadan boshlang.",
            "Срок сеанса подписания истёк. Начните подписание в системе заново.",
            "The signing session has expired. Start signing again in your hospital system.",
        ),
        "not_found" => pick(
            "Bunday imzolash seansi yo'q. Havolani tizimdan oling.",
            "Такого сеанса подписания нет. Получите ссылку в своей системе.",
            "There is no such signing session. Get the link from your hospital system.",
        ),
        "csrf" => pick(
            "So'rov rad etildi: u imzolash sahifasidan kelmagan (xavfsizlik tokeni yo'q yoki noto'g'ri).",
            "Запрос отклонён: он пришёл не со страницы подписания (нет или неверный токен безопасности).",
            "The request was refused: it did not come from the signing page (the security token is missing or wrong).",
        ),
        "wrong_browser" => pick(
            "Bu imzolash seansi boshqa brauzerda ochilgan.",
            "Этот сеанс подписания открыт в другом браузере.",
            "This signing session is open in another browser.",
        ),
        "consent_required" => pick(
            "Imzolashdan oldin roziligingizni belgilang.",
            "Перед подписанием отметьте согласие.",
            "Tick the consent box before signing.",
        ),
        "not_authenticated" => pick(
            "Avval OneID orqali kiring.",
            "Сначала войдите через OneID.",
            "Sign in with oneID first.",
        ),
        "document_changed" => pick(
            "Hujjat ko'rsatilganidan keyin o'zgardi. Tizimda imzolashni qaytadan boshlang.",
            "Документ изменился после показа. Начните подписание в системе заново.",
            "The document changed after it was shown. Start signing again in your hospital system.",
        ),
        "not_signable" => pick(
            "Bu shifokor ushbu hujjatni imzolay olmaydi (hujjatda u ko'rsatilmagan).",
            "Этот врач не может подписать документ (он не указан в документе).",
            "This practitioner cannot sign this document (they are not named in it).",
        ),
        "session_closed" => pick(
            "Bu imzolash seansi allaqachon yakunlangan.",
            "Этот сеанс подписания уже завершён.",
            "This signing session has already ended.",
        ),
        "cookies_required" => pick(
            "Kirish oynasi uchun cookie fayllari kerak. Ushbu sayt uchun cookie'larni yoqing.",
            "Для окна входа нужны cookie. Разрешите cookie для этого сайта.",
            "The login window needs cookies. Allow cookies for this site.",
        ),
        "unsafe_next" => pick(
            "Kirishdan keyin faqat shu saytning sahifasiga qaytish mumkin: so'rovdagi manzil rad etildi.",
            "После входа можно вернуться только на страницу этого сайта: адрес в запросе отклонён.",
            "After logging in you can only return to a page of this site: the address in the request was refused.",
        ),
        "unknown_provider" => pick(
            "Bunday identifikatsiya provayderi sozlanmagan. Kirish sahifasini provayder ko'rsatmasdan oching.",
            "Такой провайдер идентификации не настроен. Откройте страницу входа без указания провайдера.",
            "That identity provider is not configured. Open the login page without naming a provider.",
        ),
        "login_unavailable" => pick(
            "Kirish hozircha mumkin emas: identifikatsiya provayderi sozlanmagan. Administratorga murojaat qiling.",
            "Вход сейчас невозможен: провайдер идентификации не настроен. Обратитесь к администратору.",
            "Logging in is not possible right now: no identity provider is configured. Contact the administrator.",
        ),
        "bad_request" => pick(
            "So'rov noto'g'ri tuzilgan.",
            "Неверно составленный запрос.",
            "The request is malformed.",
        ),
        _ => pick(
            "Kutilmagan xato yuz berdi. Qaytadan urinib ko'ring.",
            "Произошла непредвиденная ошибка. Попробуйте ещё раз.",
            "An unexpected error occurred. Try again.",
        ),
    }
}

/// Every error code (for the page's hidden messages and the tests).
pub const ERROR_CODES: &[&str] = &[
    "signer_mismatch",
    "login_cancelled",
    "state_mismatch",
    "idp_unavailable",
    "idp_rejected",
    "identity_incomplete",
    "auth_method_not_allowed",
    "launch_used",
    "launch_expired",
    "session_expired",
    "not_found",
    "csrf",
    "wrong_browser",
    "consent_required",
    "not_authenticated",
    "document_changed",
    "not_signable",
    "session_closed",
    "cookies_required",
    "bad_request",
    "unsafe_next",
    "unknown_provider",
    "login_unavailable",
    "internal",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_three_distinct_texts() {
        for c in ERROR_CODES {
            let (u, r, e) = (error_message("uz", c), error_message("ru", c), error_message("en", c));
            assert!(u != r && r != e && u != e, "{c}");
        }
        assert_eq!(texts("ru-RU").lang, "ru");
        assert_eq!(texts("xx").lang, "uz");
        assert_eq!(from_accept_language(Some("de-DE, en;q=0.8, ru;q=0.5")), "en");
    }
}
