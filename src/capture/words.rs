//! The words a localized `netstat -ano` prints: its header words per language (which tell the
//! code page of a file apart, see `text.rs`) and the TCP state words Windows translates.
//!
//! Where each was learned:
//! - Spanish: a real Spanish Windows 7 SP1 x64 `netstat -ano > file` (CP850): header translated
//!   ("Conexiones activas", "Dirección local", "Dirección remota", "Estado"), state words English.
//! - German: a real German Windows `netstat -an` in a published network-analysis report (its CP850
//!   bytes shown through cp1252, "ABH™REN"), and the German mappings in two monitoring agents
//!   (systeminformation's network.js; check_mk's Windows netstat plugin): header "Aktive
//!   Verbindungen", "Lokale Adresse", "Remoteadresse", "Status"; states translated.
//! - French, Italian, Portuguese, Polish, Czech, Russian, Japanese, Chinese, Korean: header words
//!   only, from Windows' localized netstat messages as commonly reproduced; no real output of these
//!   was found to confirm translated state words, so none are mapped (an unknown one keeps its row
//!   with no state and a warning naming it).
use crate::record::TcpState;

/// Header words of `netstat -ano` per language (ASCII ones too, for completeness: only words with
/// non-ASCII letters decide a code page).
const HEADER_WORDS: &[(&str, &[&str])] = &[
    (
        "es",
        &[
            "Conexiones",
            "activas",
            "Dirección",
            "local",
            "remota",
            "Estado",
        ],
    ),
    (
        "de",
        &[
            "Aktive",
            "Verbindungen",
            "Lokale",
            "Adresse",
            "Remoteadresse",
            "Status",
        ],
    ),
    (
        "fr",
        &[
            "Connexions",
            "actives",
            "Adresse",
            "locale",
            "distante",
            "État",
        ],
    ),
    (
        "it",
        &[
            "Connessioni",
            "attive",
            "Indirizzo",
            "locale",
            "esterno",
            "Stato",
        ],
    ),
    (
        "pt",
        &[
            "Conexões",
            "ativas",
            "Endereço",
            "local",
            "externo",
            "Estado",
        ],
    ),
    (
        "pl",
        &[
            "Aktywne",
            "połączenia",
            "Protokół",
            "Adres",
            "lokalny",
            "Obcy",
            "adres",
            "Stan",
        ],
    ),
    (
        "cs",
        &["Aktivní", "připojení", "Místní", "adresa", "Cizí", "Stav"],
    ),
    (
        "ru",
        &[
            "Активные",
            "подключения",
            "Имя",
            "Локальный",
            "адрес",
            "Внешний",
            "Состояние",
        ],
    ),
    (
        "ja",
        &[
            "アクティブな接続",
            "プロトコル",
            "ローカル",
            "アドレス",
            "外部アドレス",
            "状態",
        ],
    ),
    ("zh", &["活动连接", "协议", "本地地址", "外部地址", "状态"]),
    (
        "ko",
        &["활성", "연결", "프로토콜", "로컬", "주소", "외부", "상태"],
    ),
];

/// Translated TCP state words (upper case, as netstat prints them) and the state each names.
const STATE_WORDS: &[(&str, &str, TcpState)] = &[
    ("de", "ABHÖREN", TcpState::Listening),
    ("de", "HERGESTELLT", TcpState::Established),
    ("de", "WARTEND", TcpState::TimeWait),
    ("de", "SCHLIESSEN_WARTEN", TcpState::CloseWait),
    ("de", "FIN_WARTEN_1", TcpState::FinWait1),
    ("de", "FIN_WARTEN_2", TcpState::FinWait2),
    ("de", "SYN_GESENDET", TcpState::SynSent),
    ("de", "SCHLIESSEND", TcpState::Closing),
];

/// The state a netstat state word names: English in any producer's spelling, else a translated
/// word of [`STATE_WORDS`].
pub(super) fn state(word: &str) -> Option<TcpState> {
    TcpState::parse_any(word).or_else(|| {
        let upper = word.trim().to_uppercase();
        STATE_WORDS
            .iter()
            .find(|(_, w, _)| *w == upper)
            .map(|(_, _, s)| *s)
    })
}

/// Whether `token` is a word netstat prints in some language (a header or state word).
pub(super) fn is_known(token: &str) -> bool {
    HEADER_WORDS.iter().any(|(_, words)| words.contains(&token))
        || STATE_WORDS.iter().any(|(_, w, _)| *w == token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translated_and_english_states() {
        assert_eq!(state("ABHÖREN"), Some(TcpState::Listening));
        assert_eq!(state("abhören"), Some(TcpState::Listening));
        assert_eq!(state("SCHLIESSEN_WARTEN"), Some(TcpState::CloseWait));
        assert_eq!(state("LISTENING"), Some(TcpState::Listening));
        assert_eq!(state("ESCUCHANDO"), None);
        assert!(is_known("Dirección") && is_known("状態") && !is_known("Direcci¢n"));
    }
}
