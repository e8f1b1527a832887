from serving.normalize import NormalizationSettings, normalize


def test_strips_diacritics_and_tatweel_and_collapses_spaces():
    assert normalize("  مَـــدْرَسَةٌ   جَدِيدَةٌ \n") == "مدرسة جديدة"


def test_replaces_links_and_mentions_with_placeholders():
    assert normalize("شاهد https://example.com/a?b=1 عبر @news_ar") == "شاهد URL عبر @USER"


def test_letter_variants_are_unified_only_when_asked():
    text = "أحمد إلى مستشفى القرية"
    assert normalize(text) == text
    merged = NormalizationSettings(unify_alef=True, unify_yaa=True, unify_taa_marbuta=True)
    assert normalize(text, merged) == "احمد الي مستشفي القريه"


def test_settings_round_trip_and_reject_unknown_keys():
    settings = NormalizationSettings(unify_alef=True, url_token=None)
    assert NormalizationSettings.from_dict(settings.to_dict()) == settings
    try:
        NormalizationSettings.from_dict({"strip_emoji": True})
    except ValueError as error:
        assert "strip_emoji" in str(error)
    else:
        raise AssertionError("an unknown setting was accepted")


def test_nothing_to_read_is_what_normalisation_and_tokenising_leave_nothing_of():
    from serving.normalize import nothing_to_read

    for text in ["\u064e\u0650", "\u0640", "\x00", "\u200b\u200d\ufeff", "\u202e\u2067\u061c", " \u064b\t\u200b "]:
        assert nothing_to_read(text) and normalize(text).strip("\x00\u200b\u200d\ufeff\u202e\u2067\u061c ") == ""
    for text in ["ب\u064e", "!", "3", "😀", "x\u200b"]:
        assert not nothing_to_read(text)
