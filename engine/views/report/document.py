"""The report as an official document (Decree 30/2020/NĐ-CP): header, body blocks and closing, in Vietnamese.

`official(data)` turns the figures into a neutral layout that the HTML template, the Word writer
and (through the HTML) the PDF all render: the agencies and the national title side by side,
number and symbol, place and date, title, body, "Nơi nhận" and one signature block per agency.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, timedelta
from typing import Any

NATIONAL_TITLE = "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM"
MOTTO = "Độc lập - Tự do - Hạnh phúc"

# What the figures mean: printed in the report ("Cách tính") and in docs/operators.md.
DEFINITIONS = [
    ("Mở mới", "số hồ sơ được khởi tạo trong kỳ."),
    ("Kết thúc", "số lần hồ sơ chuyển sang trạng thái cuối (đã trả lời, từ chối, rút, kết thúc…) trong kỳ."),
    ("Quá hạn", "số lần hệ thống tự động chuyển trạng thái khi hết thời hạn mà chỉ hệ thống được thực hiện "
                "(ví dụ: quá hạn trả lời, báo cáo lãnh đạo, coi như đã nhận); các bước hệ thống làm thay khi đến hạn "
                "mà con người cũng được làm (ví dụ: đến giờ họp) không tính."),
    ("Trễ hạn", "tính từ thời hạn danh nghĩa (thời hạn theo quy chế, không phải lúc hệ thống ghi nhận quá hạn, kể cả "
                "khi hệ thống tạm dừng): số ngày làm việc bắt đầu từ thời hạn đến khi hồ sơ kết thúc, hoặc đến cuối kỳ "
                "nếu hồ sơ còn mở."),
    ("Phản hồi của một cơ quan", "một thao tác của cơ quan đó trên hồ sơ do cơ quan khác (hoặc lịch, quy tắc của "
                                 "quy chế) gửi đến; việc cơ quan tự soạn, tự gửi hồ sơ của mình không phải là phản hồi. "
                                 "Thời gian phản hồi tính từ lúc hồ sơ chuyển đến bước mà cơ quan đó phải làm đến thao "
                                 "tác đầu tiên của cơ quan ở bước này (chuyển bước, hoặc cho ý kiến đồng ý khi cần sự "
                                 "thống nhất của nhiều cơ quan), vào kỳ có phản hồi."),
    ("Đã họp", "cuộc họp chỉ được coi là đã tổ chức khi một người có thẩm quyền ghi nhận việc họp; hệ thống tự chuyển "
               "trạng thái khi đến giờ họp không được tính là đã họp."),
    ("Chuyển cấp", "các lần quá hạn nêu trên, các lần hồ sơ được khởi tạo hoặc chuyển trạng thái theo quy tắc sự kiện "
                   "(ví dụ: đề xuất họp giao ban đột xuất), và các lần hồ sơ được báo cáo lãnh đạo hoặc cấp trên."),
    ("Thực hiện kết luận", "mỗi nội dung kết luận giao cho một cơ quan có thời hạn: đã hoàn thành (đúng hạn hoặc chậm), "
                           "quá hạn, hoặc đang thực hiện, tính đến cuối kỳ."),
]

ACTION_STATUS = {"done": "Đã hoàn thành", "done_late": "Hoàn thành chậm", "late": "Quá hạn", "open": "Đang thực hiện",
                 "closed": "Dừng thực hiện"}


def vn(iso: str | None, with_time: bool = False) -> str:
    """An ISO instant as a Vietnamese date dd/mm/yyyy (and HH:MM)."""
    if not iso:
        return "—"
    moment = datetime.fromisoformat(iso)
    return moment.strftime("%H:%M %d/%m/%Y" if with_time else "%d/%m/%Y")


def human_duration(seconds: float | None) -> str:
    """Seconds as Vietnamese text, to the minute: '2 ngày 3 giờ', '45 phút'; '—' for none."""
    if seconds is None:
        return "—"
    minutes = int(round(seconds / 60))
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    parts = [f"{v} {u}" for v, u in ((days, "ngày"), (hours, "giờ"), (mins, "phút")) if v]
    return " ".join(parts) or "0 phút"


def late_text(days: int | None) -> str:
    if days is None:
        return "—"
    return f"{days} ngày làm việc" if days else "dưới 1 ngày làm việc"


def last_day(data: dict) -> date:
    return date.fromisoformat(data["end"][:10]) - timedelta(days=1)


def event_text(e: dict) -> str:
    """What moved the instance: 'Quá hạn trả lời (hết thời hạn)', 'khởi tạo (quy tắc …)'."""
    what = e["trigger_title"] or "Khởi tạo hồ sơ"
    if e["kind"] == "rule":
        return f"{what} (theo quy tắc: {e['rule_title']})"
    if e["kind"] == "deadline":
        return f"{what} (hết thời hạn)"
    return what


def symbol(title: str) -> str:
    """'Sở Thông tin và Truyền thông tỉnh Lào Cai' -> 'STTTT': initials of the name before 'tỉnh', without accents."""
    words = re.split(r"\s+(?:tỉnh|thành phố)\s+", " ".join(title.split()), maxsplit=1)[0].split()
    initials = "".join(w[0] for w in words if w.lower() != "và").upper().replace("Đ", "D")
    return unicodedata.normalize("NFKD", initials).encode("ascii", "ignore").decode() or "CQ"


def date_line(data: dict) -> str:
    """'Lào Cai, ngày 02 tháng 12 năm 2026' (Decree 30: days below 10 and months below 3 take a leading 0)."""
    day = datetime.fromisoformat(data["generated_at"])
    month = f"{day.month:02d}" if day.month < 3 else str(day.month)
    text = f"ngày {day.day:02d} tháng {month} năm {day.year}"
    return f"{data['place']}, {text}" if data.get("place") else text.capitalize()


def _party_title(data: dict, pid: str | None) -> str:
    found = next((p["title"] for p in data["parties"] if p["party"] == pid), None)
    return found or pid or "—"


def _opened_by(data: dict, m: dict) -> str:
    if m["rule"]:
        return "Theo quy tắc của quy chế"
    return _party_title(data, m["opened_by"]) if m["opened_by"] else "Theo lịch của quy chế"


def _action_status(a: dict) -> str:
    text = ACTION_STATUS[a["status"]]
    if a["status"] in ("done_late", "late"):
        return f"{text} ({late_text(a['late_days'])})"
    if a["status"] == "closed":
        return f"{text}: {a['state_title']}"
    return text


def _body(data: dict[str, Any]) -> list[tuple]:
    t = data["totals"]
    body: list[tuple] = [("p", f"Căn cứ {data['agreement']}; kỳ báo cáo {data['period_title']} "
                               f"(từ ngày {vn(data['start'])} đến hết ngày {last_day(data).strftime('%d/%m/%Y')}), "
                               f"{' và '.join(i['title'] for i in data['issuers'])} báo cáo kết quả phối hợp như sau:")]
    if not data["complete"]:
        body.append(("p", f"Kỳ báo cáo chưa kết thúc: số liệu tính đến {vn(data['generated_at'], True)}."))
    body += [("h2", "1. Kết quả theo điều khoản"),
             ("table", ["Điều khoản", "Quy trình", "Mở mới", "Kết thúc", "Quá hạn", "Báo cáo lãnh đạo", "Báo cáo cấp trên", "Còn mở"],
              [[c["clause"], c["title"], c["opened"], c["closed"], c["overdue"], c["escalated"], c["referred"], c["open"]]
               for c in data["workflows"]]
              + [["", "Tổng cộng", t["opened"], t["closed"], t["overdue"], t["escalated"], t["referred"], t["open"]]])]
    for c in data["workflows"]:
        if c["requests"]:
            body.append(("h3", f"Điều khoản {c['clause']} – {c['title']}: các hồ sơ mở trong kỳ ({len(c['requests'])})"))
            body.append(("table", ["Hồ sơ", "Nội dung", "Số văn bản", "Ngày mở", "Trạng thái", "Trả lời, kết quả",
                                   "Ngày kết thúc", "Trễ hạn"],
                         [[r["instance"], r["subject"] or "—", ", ".join(r["dispatch"]) or "—", vn(r["opened_at"]),
                           r["state_title"], r["answer"] or "—", vn(r["closed_at"]), late_text(r["late_days"])]
                          for r in c["requests"]]))
    body += [("h2", "2. Thời gian phản hồi của các cơ quan"),
             ("table", ["Cơ quan", "Số lần phản hồi", "Trung vị", "Lâu nhất", "Hồ sơ phản hồi lâu nhất"],
              [[p["title"], p["responses"], human_duration(p["median_seconds"]), human_duration(p["worst_seconds"]),
                f"{p['worst_instance']} ({p['worst_state_title']})" if p["worst_instance"] else "—"] for p in data["parties"]]),
             ("chart",), ("h2", "3. Các cuộc họp giao ban")]
    if data["meetings"]:
        body.append(("table", ["Cuộc họp", "Nội dung", "Đề xuất, triệu tập", "Thời gian họp", "Đã họp", "Kết luận", "Tình trạng"],
                     [[f"{m['workflow_title']} ({m['instance']})", m["subject"] or "—", _opened_by(data, m),
                       vn(m["meeting_at"], True),
                       f"có, ghi nhận lúc {vn(m['held_at'], True)}" if m["held"] else "chưa có người ghi nhận việc họp",
                       m["conclusions"] or "—", m["state_title"]] for m in data["meetings"]]))
        body.append(("p", f"Số cuộc họp trong kỳ: {len(data['meetings'])}; đã họp: {sum(m['held'] for m in data['meetings'])}."))
    else:
        body.append(("p", "Không có cuộc họp giao ban nào trong kỳ."))
    body.append(("h2", "4. Thực hiện kết luận các cuộc họp"))
    if data["actions"]:
        body.append(("table", ["Nội dung", "Cơ quan thực hiện", "Thời hạn", "Tình trạng", "Cuộc họp giao"],
                     [[a["subject"] or a["instance"], _party_title(data, a["party"]), vn(a["due"]), _action_status(a),
                       a["meeting_subject"] or a["meeting"] or "—"] for a in data["actions"]]))
        counts = {k: sum(a["status"] == k for a in data["actions"]) for k in ACTION_STATUS}
        body.append(("p", "; ".join(f"{ACTION_STATUS[k].lower()}: {n}" for k, n in counts.items() if n).capitalize() + "."))
    else:
        body.append(("p", "Không có nội dung kết luận nào cần theo dõi trong kỳ."))
    body.append(("h2", "5. Quá hạn và chuyển cấp"))
    if data["escalations"]:
        body.append(("table", ["Thời điểm", "Quy trình", "Hồ sơ", "Sự kiện", "Chuyển đến"],
                     [[vn(e["at"], True), e["workflow_title"], e["instance"], event_text(e), e["to_title"]]
                      for e in data["escalations"]]))
        body.append(("p", f"Tổng số lần chuyển cấp: {len(data['escalations'])}."))
    else:
        body.append(("p", "Không có trường hợp quá hạn hoặc chuyển cấp trong kỳ."))
    body.append(("h2", "6. Những việc còn tồn tại"))
    body.append(("p", f"Đến cuối kỳ còn {t['open']} hồ sơ chưa kết thúc, trong đó "
                      f"{sum(c['open_late'] for c in data['workflows'])} hồ sơ đã quá hạn."))
    if data["remaining"]:
        body.append(("table", ["Hồ sơ", "Quy trình", "Nội dung", "Trạng thái", "Trễ hạn"],
                     [[r["instance"], r["workflow_title"], r["subject"] or "—", r["state_title"], late_text(r["late_days"])]
                      for r in data["remaining"]]))
    body.append(("h2", "7. Mốc kiểm toán của kỳ"))
    a = data["anchor"]
    body.append(("p", "Chưa có bản ghi lịch sử nào đến cuối kỳ." if a is None else
                 f"Bản ghi lịch sử cuối cùng đến hết kỳ: số thứ tự {a['seq']}, lúc {vn(a['at'], True)}, mã băm {a['hash']}. "
                 f"Lệnh “coopflow audit verify” xác nhận chuỗi lịch sử chưa bị sửa đổi; bản ghi số {a['seq']} phải có "
                 f"đúng mã băm này."))
    body.append(("h2", "Cách tính"))
    body += [("def", name, text) for name, text in DEFINITIONS]
    return body


def official(data: dict[str, Any]) -> dict[str, Any]:
    """The report as a neutral document: header lines, body blocks and closing, rendered by HTML and Word."""
    issuers = data["issuers"]
    return {
        "agencies": [i["title"].upper() for i in issuers], "national": NATIONAL_TITLE, "motto": MOTTO,
        "number": f"Số: …/BC-{'-'.join(symbol(i['title']) for i in issuers)}", "date_line": date_line(data),
        "title": "BÁO CÁO", "subtitle": f"Kết quả phối hợp {data['period_title']}", "body": _body(data),
        "recipients": [f"{c} (để báo cáo);" for c in data["copies"]] + ["Lãnh đạo hai cơ quan;", "Lưu: VT."],
        "signatures": [{"agency": i["title"].upper(), "signer": (i["signer"] or "Thủ trưởng cơ quan").upper(),
                        "note": "(Ký, ghi rõ họ tên, đóng dấu)"} for i in issuers],
    }
