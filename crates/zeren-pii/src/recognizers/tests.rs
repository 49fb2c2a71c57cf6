use super::*;

fn found(text: &str) -> Vec<(EntityType, &str, f64)> {
    Scanner::new().scan(text).into_iter().map(|f| (f.entity, &text[f.start..f.end], f.score)).collect()
}

fn entities(text: &str) -> Vec<(EntityType, &str)> {
    found(text).into_iter().map(|(e, s, _)| (e, s)).collect()
}

#[test]
fn finds_chinese_mobile_with_context() {
    let result = found("请拨打手机 138 1234 5678 联系我");
    assert_eq!(result.len(), 1);
    assert_eq!(result[0].0, EntityType::PhoneNumber);
    assert_eq!(result[0].1, "138 1234 5678");
    assert!(result[0].2 > 0.9, "context should raise the score: {}", result[0].2);
}

#[test]
fn finds_mobile_with_country_code() {
    assert_eq!(entities("call +86 13912345678 now"), vec![(EntityType::PhoneNumber, "+86 13912345678")]);
}

#[test]
fn full_width_number_keeps_original_offsets() {
    let text = "电话：１３９１２３４５６７８";
    let findings = Scanner::new().scan(text);
    assert_eq!(findings.len(), 1);
    assert_eq!(&text[findings[0].start..findings[0].end], "１３９１２３４５６７８");
    assert_eq!(findings[0].start, "电话：".len());
}

#[test]
fn resident_id_needs_valid_check_digit() {
    assert_eq!(entities("身份证号11010519491231002X。"), vec![(EntityType::CnResidentId, "11010519491231002X")]);
    assert!(entities("编号110105194912310021").iter().all(|(e, _)| *e != EntityType::CnResidentId));
}

#[test]
fn cards_need_luhn() {
    assert_eq!(entities("card 4111 1111 1111 1111 expires"), vec![(EntityType::CreditCard, "4111 1111 1111 1111")]);
    assert_eq!(entities("银联卡号6217000012345678907"), vec![(EntityType::CreditCard, "6217000012345678907")]);
    assert!(entities("order 4111 1111 1111 1112").is_empty());
}

#[test]
fn finds_email_url_and_addresses() {
    let text = "Mail li.wei@example.com, see https://example.org/a?b=1. Host 192.168.1.20 or 2001:db8::1, MAC 00:1A:2B:3C:4D:5E";
    let result = entities(text);
    assert!(result.contains(&(EntityType::EmailAddress, "li.wei@example.com")), "{result:?}");
    assert!(result.contains(&(EntityType::Url, "https://example.org/a?b=1")), "{result:?}");
    assert!(result.contains(&(EntityType::IpAddress, "192.168.1.20")), "{result:?}");
    assert!(result.contains(&(EntityType::IpAddress, "2001:db8::1")), "{result:?}");
    assert!(result.contains(&(EntityType::MacAddress, "00:1A:2B:3C:4D:5E")), "{result:?}");
}

#[test]
fn rejects_invalid_ip_and_clock_times() {
    assert!(entities("version 999.1.2.3 at 12:30:45").is_empty());
}

#[test]
fn finds_iban_ssn_and_uscc() {
    assert_eq!(
        entities("IBAN GB82 WEST 1234 5698 7654 32."),
        vec![(EntityType::IbanCode, "GB82 WEST 1234 5698 7654 32")]
    );
    assert_eq!(entities("SSN 123-45-6789"), vec![(EntityType::UsSsn, "123-45-6789")]);
    assert!(entities("SSN 666-45-6789").is_empty());
    assert_eq!(entities("统一社会信用代码：91350100M000100Y43"), vec![(EntityType::CnUscc, "91350100M000100Y43")]);
}

#[test]
fn passport_and_birth_date_need_context() {
    assert_eq!(entities("护照号码 E12345678"), vec![(EntityType::Passport, "E12345678")]);
    assert!(entities("model E12345678").is_empty());
    assert_eq!(entities("出生日期：1990年3月7日"), vec![(EntityType::DateOfBirth, "1990年3月7日")]);
    assert_eq!(entities("born on 1985-10-20"), vec![(EntityType::DateOfBirth, "1985-10-20")]);
    assert!(entities("shipped on 1985-10-20").is_empty());
}

#[test]
fn numbers_inside_longer_numbers_are_ignored() {
    assert!(entities("batch 9913812345678123").iter().all(|(e, _)| *e != EntityType::PhoneNumber));
}

#[test]
fn clean_poem_has_no_findings() {
    let text = "床前明月光，疑是地上霜。举头望明月，低头思故乡。";
    assert!(entities(text).is_empty());
}

#[test]
fn us_and_uk_phone_formats() {
    assert_eq!(entities("Tel (415) 555-2671"), vec![(EntityType::PhoneNumber, "(415) 555-2671")]);
    assert_eq!(entities("mobile 07700 900 123"), vec![(EntityType::PhoneNumber, "07700 900 123")]);
}

#[test]
fn entity_names_follow_presidio() {
    assert_eq!(EntityType::PhoneNumber.name(), "PHONE_NUMBER");
    assert_eq!(EntityType::from_name("CN_RESIDENT_ID"), Some(EntityType::CnResidentId));
    assert_eq!(EntityType::from_name("PERSON"), Some(EntityType::Person));
    assert_eq!(EntityType::from_name("NRP"), None);
}

#[test]
fn shape_windows_keep_matches_after_decoys() {
    // Colons, hyphens, capitals and digits earlier in the line must not hide a later match.
    let text = "Note: at 10:30 the well-made AB1 box-set, host fe80::1ff:fe23:4567:890a, \
                mac 00-1a-2b-3c-4d-5e, iban GB82 WEST 1234 5698 7654 32, born 1990-01-02";
    let result = entities(text);
    assert!(result.contains(&(EntityType::IpAddress, "fe80::1ff:fe23:4567:890a")), "{result:?}");
    assert!(result.contains(&(EntityType::MacAddress, "00-1a-2b-3c-4d-5e")), "{result:?}");
    assert!(result.contains(&(EntityType::IbanCode, "GB82 WEST 1234 5698 7654 32")), "{result:?}");
    assert!(result.contains(&(EntityType::DateOfBirth, "1990-01-02")), "{result:?}");
}

#[test]
fn digits_of_other_scripts_are_not_identifiers() {
    // Arabic-Indic digits are not folded, so they are not matched as ASCII identifiers are.
    assert!(entities("call ١٣٨١٢٣٤٥٦٧٨ now").is_empty());
}

#[test]
fn glued_candidates_do_not_hide_the_next_number() {
    // The first number touches a letter and the second an 18-digit run: neither is a phone
    // number, and skipping past them must still find the real one after.
    let result = entities("ref x13912345678 id 110105194912310021913812345678 tel 13712345678");
    assert_eq!(result, vec![(EntityType::PhoneNumber, "13712345678")]);
}

#[test]
fn ipv6_full_and_compressed_not_mac() {
    assert_eq!(
        entities("host 2001:0db8:85a3:0000:0000:8a2e:0370:7334 up"),
        vec![(EntityType::IpAddress, "2001:0db8:85a3:0000:0000:8a2e:0370:7334")]
    );
    assert_eq!(
        entities("服务器地址fe80::1ff:fe23:4567:890a。"),
        vec![(EntityType::IpAddress, "fe80::1ff:fe23:4567:890a")]
    );
    assert_eq!(entities("MAC 00:1a:2b:3c:4d:5e"), vec![(EntityType::MacAddress, "00:1a:2b:3c:4d:5e")]);
}

#[test]
fn context_words_match_in_any_ascii_case() {
    let lower = found("phone 020 7946 0018");
    let upper = found("PHONE 020 7946 0018");
    assert_eq!(lower.len(), 1);
    assert_eq!(upper, lower);
    assert!(upper[0].2 > 0.7, "an upper-case context word should raise the score: {}", upper[0].2);
}

/// Text around every kind of identifier, with the near misses that make patterns backtrack.
const PATTERN_PROBES: &[&str] = &[
    "call +86 139-1234-5678 or (010) 6552-9988, +1 (212) 555-0147, 212.555.0147, +44 7700 900123",
    "020 7946 0018 and 07700900123; id 11010519491231002X, old 110105491231002, 123-45-6789",
    "card 6217 0000 1234 5678 907 / 4111-1111-1111-1111; USCC 91350100M000100Y43, 91110101GG761TJJD8",
    "dates 1990-01-02, 1990年1月2日, 02/01/1990; passport E12345678, G1234567; ip 10.142.215.211",
    "1234567890123456789012345 12 345 6789 0123 4567 +8613912345678x 9913912345678 1.2.3.4.5",
    "电话：138-1234-5678。编号110105194912310021，卡号6222021234567890123。",
];

#[test]
fn dense_dfas_find_what_the_general_engine_finds() {
    let scanner = Scanner::new();
    // IPv4, the five phone formats, SSN, the three resident ID forms, USCC and passport. The date
    // pattern contains Chinese characters.
    assert_eq!(scanner.recognizers.iter().filter(|r| r.pattern.dense.is_some()).count(), 12);
    let mut compared = 0;
    for recognizer in scanner.recognizers.iter().filter(|r| r.pattern.dense.is_some()) {
        for text in PATTERN_PROBES {
            for at in (0..=text.len()).filter(|&at| text.is_char_boundary(at)) {
                let general = recognizer.pattern.general.find_at(text, at).map(|m| (m.start(), m.end()));
                assert_eq!(
                    recognizer.pattern.find_at(text, at),
                    general,
                    "{} in {text:?} from {at}",
                    recognizer.pattern.general.as_str()
                );
                compared += usize::from(general.is_some());
            }
        }
    }
    assert!(compared > 100, "the probes should hold matches of the dense patterns: {compared}");
}

#[test]
fn longer_runs_are_not_mac_or_ipv4() {
    // Eight colon-separated groups also spell a valid IPv6 address, which is what is reported.
    assert_eq!(
        entities("EUI-64 00:1a:2b:3c:4d:5e:6f:70 here"),
        vec![(EntityType::IpAddress, "00:1a:2b:3c:4d:5e:6f:70")]
    );
    assert_eq!(entities("EUI-64 00-1a-2b-3c-4d-5e-6f-70 here"), vec![]);
    assert_eq!(entities("version 1.2.3.4.5 released"), vec![]);
    assert_eq!(entities("server 192.0.2.1:8080 up"), vec![(EntityType::IpAddress, "192.0.2.1")]);
    assert_eq!(entities("mapped ::ffff:192.0.2.1 here"), vec![(EntityType::IpAddress, "::ffff:192.0.2.1")]);
    assert_eq!(entities("MAC 00-1A-2B-3C-4D-5E."), vec![(EntityType::MacAddress, "00-1A-2B-3C-4D-5E")]);
    assert_eq!(entities("MAC：1B:DC:B3:36:B8:65。"), vec![(EntityType::MacAddress, "1B:DC:B3:36:B8:65")]);
}

#[test]
fn grouped_ids_and_phones_are_found() {
    assert_eq!(entities("身份证号 110101 19900307 1233，"), vec![(EntityType::CnResidentId, "110101 19900307 1233")]);
    assert_eq!(entities("证件 110101-19900307-1234"), vec![], "a wrong check digit is no ID");
    for (text, number) in [
        ("座机 0755 8888 6666", "0755 8888 6666"),
        ("电话 (010) 6234 5678", "(010) 6234 5678"),
        ("电话 021-6234-5678", "021-6234-5678"),
        ("手机 008613912345678", "008613912345678"),
    ] {
        assert_eq!(entities(text), vec![(EntityType::PhoneNumber, number)], "{text}");
    }
}
