"""Deterministic, streaming CSV data for every report table.

Each row is a pure function of (seed, table, row index), so any row can be produced
without the others and nothing is ever held in memory beyond one batch. Rows are
formatted with f-strings in batches of a few thousand and written as bytes, which
keeps generation well above 50 MB/s.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from .world import (
    ACCOUNTS,
    ACCOUNTS_BY_ID,
    TERMS,
    TERMS_BY_ID,
    Sizes,
    course_account,
    course_term,
    subtree,
)

BATCH_ROWS = 4096
_MASK32 = 0xFFFFFFFF

_FIRST = [
    "James",
    "Mary",
    "John",
    "Patricia",
    "Robert",
    "Jennifer",
    "Michael",
    "Linda",
    "William",
    "Elizabeth",
    "David",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Christopher",
    "Nancy",
    "Daniel",
    "Lisa",
    "Matthew",
    "Betty",
    "Anthony",
    "Margaret",
    "Mark",
    "Sandra",
    "Donald",
    "Ashley",
    "Steven",
    "Kimberly",
    "Paul",
    "Emily",
    "Andrew",
    "Donna",
    "Joshua",
    "Michelle",
    "Kenneth",
    "Carol",
    "Kevin",
    "Amanda",
    "Brian",
    "Dorothy",
    "George",
    "Melissa",
    "Timothy",
    "Deborah",
    "José",
    "Zoë",
    "Siobhán",
    "Björn",
    "Chloé",
    "Renée",
    "Ngozi",
    "Wei",
    "Aarav",
    "Fatima",
    "Mateo",
    "Yuki",
    "Olamide",
    "Søren",
]
_LAST = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
    "O'Brien",
    "Müller",
    "Nguyễn",
    "Kowalski",
    "Okafor",
    "Van_der_Berg",
    "Ødegaard",
    "Dubois",
    "Rossi",
    "Tanaka",
    "Haddad",
    "Sørensen",
    "Papadopoulos",
    "Ivanova",
]
_LAST = [name.replace("_", " ") for name in _LAST]
_SUBJECTS = (
    ("BIOL", "Biology"),
    ("CHEM", "Chemistry"),
    ("PHYS", "Physics"),
    ("MATH", "Calculus"),
    ("HIST", "World History"),
    ("ENGL", "Composition"),
    ("PSYC", "Psychology"),
    ("ECON", "Economics"),
    ("ARTH", "Art History"),
    ("PHIL", "Ethics, Logic and Reasoning"),
    ("CSCI", "Programming"),
    ("MUSC", "Music Theory"),
)


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum())


def csv_field(text: str) -> str:
    """Quote a field the way a CSV writer does: only when it needs it."""
    if any(ch in text for ch in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


@dataclass(frozen=True)
class GenParams:
    """What the data of one report depends on (and so its cache key)."""

    users: int
    seed: int
    sis_format: bool = False
    include_deleted: bool = False
    term_ids: frozenset[int] | None = None
    account_id: int = 1


class GenContext:
    """Precomputed lookup tables shared by the row functions of one report."""

    def __init__(self, params: GenParams) -> None:
        self.params = params
        self.sizes = Sizes(params.users)
        self.salt = (params.seed * 0x9E3779B1 + 0x7F4A7C15) & _MASK32
        self.sis = params.sis_format
        self.deleted = params.include_deleted
        # Names: 64 x 64 combinations indexed by 12 bits of a row's hash.
        self.full: list[str] = []
        self.sortable: list[str] = []
        self.first: list[str] = []
        self.last: list[str] = []
        self.login: list[str] = []
        for h in range(4096):
            first, last = _FIRST[h % len(_FIRST)], _LAST[(h >> 6) % len(_LAST)]
            self.first.append(csv_field(first))
            self.last.append(csv_field(last))
            self.full.append(csv_field(f"{first} {last}"))
            self.sortable.append(csv_field(f"{last}, {first}"))
            self.login.append(f"{_ascii(first)}.{_ascii(last)}")
        courses = self.sizes.courses
        accounts = subtree(params.account_id)
        wanted_terms = params.term_ids
        # Per course: is it in the report's scope (sub-account and terms)?
        self.course_ok: bytearray | None = None
        # Per course: is it in the report's sub-account (whatever the term)? None: the root account.
        self.course_in_account: bytearray | None = None
        if params.account_id != 1:
            self.course_in_account = bytearray(
                1 if course_account(c) in accounts else 0 for c in range(courses)
            )
        if params.account_id != 1 or wanted_terms is not None:
            self.course_ok = bytearray(
                1
                if course_account(c) in accounts and (wanted_terms is None or course_term(c) in wanted_terms)
                else 0
                for c in range(courses)
            )
        self.course_sis: list[str] = []
        self.course_code: list[str] = []
        self.course_name: list[str] = []
        for c in range(courses):
            code, title = _SUBJECTS[c % len(_SUBJECTS)]
            number = 100 + (c * 37) % 400
            term = TERMS_BY_ID[course_term(c)]
            self.course_sis.append(f"{term.sis_id or 'NOTERM'}-{code}{number}-{c:05d}")
            self.course_code.append(f"{code} {number}")
            self.course_name.append(csv_field(f"{title} {number} ({c:05d})"))
        self.timestamps = [
            f"2026-{1 + m % 11:02d}-{1 + (m * 7) % 28:02d}T{(m * 5) % 24:02d}:{(m * 13) % 60:02d}:00-06:00"
            for m in range(256)
        ]

        self._sections: SectionParts | None = None
        self.stride = self.sizes.sections // 5 + 1

    # Relations shared by several tables.
    def student_section(self, j: int) -> int:
        """The section of student enrollment ``j`` (user ``j // 5``, five distinct sections)."""
        return ((j // 5) * 7919 + self.salt + (j % 5) * self.stride) % self.sizes.sections

    def section_parts(self) -> SectionParts:
        if self._sections is None:
            self._sections = SectionParts(self)
        return self._sections

    def section_name(self, s: int) -> str:
        # A course's first section is "Section 01", its extra one "Section 02".
        return f"Section {s // self.sizes.courses + 1:02d}"

    def section_course(self, s: int) -> int:
        courses = self.sizes.courses
        return s % courses if s < courses else ((s - courses) * 4) % courses

    def users_enrolled_in(self, course_flags: bytearray | None) -> bytearray | None:
        """Per user: a student enrollment in a flagged course? None (no flags): every user counts.

        A sub-account's user reports list the users associated with it through enrollments in
        its courses, as Canvas's user sub-account scope does.
        """
        if course_flags is None:
            return None
        index = self.section_parts().course_index
        section = self.student_section
        users = bytearray(
            1 if any(course_flags[index[section(5 * u + k)]] for k in range(5)) else 0
            for u in range(self.sizes.users)
        )
        for s in range(self.sizes.sections):  # and the teacher of each of its sections
            if course_flags[index[s]]:
                users[self.teacher_user(s)] = 1
        return users

    def in_scope(self, course: int) -> bool:
        return self.course_ok is None or bool(self.course_ok[course % self.sizes.courses])

    def teacher_user(self, section: int) -> int:
        pool = max(1, self.sizes.users // 50)
        return min(self.sizes.users - 1, ((section * 7919) % pool) * 50 + 1)


@functools.lru_cache(maxsize=4)
def context_for(params: GenParams) -> GenContext:
    """Shared per parameters: building the lookup tables is the slow part for big data."""
    return GenContext(params)


class SectionParts:
    """Per-section CSV fragments, built once so enrollment rows are one f-string."""

    def __init__(self, ctx: GenContext) -> None:
        n = ctx.sizes.sections
        courses = ctx.sizes.courses
        self.course_index = [ctx.section_course(s) % courses for s in range(n)]
        ok = ctx.course_ok
        self.ok = bytearray(1 if ok is None or ok[c] else 0 for c in self.course_index)
        self.course_sis = [ctx.course_sis[c] for c in self.course_index]
        self.sis = [f"{ctx.course_sis[c]}-S{s:06d}" for s, c in enumerate(self.course_index)]
        self.course = [f"{200000 + c},{ctx.course_sis[c]}," for c in self.course_index]
        self.section = [f"{300000 + s},{self.sis[s]}," for s in range(n)]
        grade = []
        for s, c in enumerate(self.course_index):
            term = TERMS_BY_ID[course_term(c)]
            grade.append(
                f"{ctx.course_name[c]},{200000 + c},{ctx.course_sis[c]},{ctx.section_name(s)},{300000 + s},"
                f"{self.sis[s]},{term.name},{term.id},{term.sis_id or ''}"
            )
        self.grade = grade


RowFn = Callable[[int], str]


@dataclass(frozen=True)
class Table:
    name: str
    header: str
    sis_header: str | None
    count: Callable[[Sizes], int]
    make_row: Callable[[GenContext], RowFn]
    # Extra rows beyond the natural count are only produced to pad; tables whose
    # rows stop making sense past the end (fixed lists) repeat with a suffix.

    def header_for(self, ctx: GenContext) -> str:
        return (self.sis_header if ctx.sis and self.sis_header is not None else self.header) + "\n"


# --- SIS tables -------------------------------------------------------------------


def _users(ctx: GenContext) -> RowFn:
    salt, sis, deleted = ctx.salt, ctx.sis, ctx.deleted
    login = ctx.login
    listed = ctx.users_enrolled_in(ctx.course_in_account)  # a term does not narrow users.csv
    # first,last,full,sortable,short: one precomputed fragment per name combination.
    names = [
        f"{ctx.first[n]},{ctx.last[n]},{ctx.full[n]},{ctx.sortable[n]},{ctx.full[n]}," for n in range(4096)
    ]

    def row(i: int) -> str:
        if listed is not None and not listed[i]:
            return ""
        h = ((i ^ salt) * 2654435761) & _MASK32
        h ^= h >> 15
        status = "active"
        if h % 53 == 0:
            if not deleted:
                return ""
            status = "deleted"
        n = h & 4095
        lg = f"{login[n]}{i}"
        integ = f"INT{i:07d}" if h % 3 == 0 else ""
        auth = "1" if h % 7 == 0 else ""
        if h % 11 == 0:  # created by hand, not by SIS: no SIS id, absent from SIS exports
            if sis:
                return ""
            return f"{100000 + i},,{integ},{auth},{lg},{names[n]}{lg}@example.edu,{status},false\n"
        if sis:
            return f"U{i:07d},{integ},{auth},{lg},,{names[n]}{lg}@example.edu,{status}\n"
        return f"{100000 + i},U{i:07d},{integ},{auth},{lg},{names[n]}{lg}@example.edu,{status},true\n"

    return row


def _accounts(ctx: GenContext) -> RowFn:
    # Canvas lists direct children of a sub-account, all accounts under the root.
    account_id = ctx.params.account_id
    rows = [a for a in ACCOUNTS if a.parent_id is not None and (account_id == 1 or a.parent_id == account_id)]
    sis = ctx.sis

    def row(i: int) -> str:
        acc = rows[i % len(rows)] if rows else None
        if acc is None:
            return ""
        suffix = f"-{i // len(rows)}" if i >= len(rows) else ""
        parent = ACCOUNTS_BY_ID[acc.parent_id or 1]
        name = csv_field(acc.name + suffix)
        if sis:
            if acc.sis_id is None:
                return ""
            return f"{acc.sis_id}{suffix},{parent.sis_id or ''},{name},active\n"
        sis_id = f"{acc.sis_id}{suffix}" if acc.sis_id else ""
        by_sis = "true" if acc.sis_id else "false"
        return f"{acc.id + 1000 * (i // len(rows))},{sis_id},{parent.id},{parent.sis_id or ''},{name},active,{by_sis}\n"

    return row


def _terms(ctx: GenContext) -> RowFn:
    sis = ctx.sis

    def row(i: int) -> str:
        term = TERMS[i % len(TERMS)]
        suffix = f"-{i // len(TERMS)}" if i >= len(TERMS) else ""
        start, end = term.start or "", term.end or ""
        if sis:
            if term.sis_id is None:
                return ""
            return f"{term.sis_id}{suffix},{term.name}{suffix},active,{start},{end}\n"
        sis_id = f"{term.sis_id}{suffix}" if term.sis_id else ""
        by_sis = "true" if term.sis_id else "false"
        return f"{term.id + 100 * (i // len(TERMS))},{sis_id},{term.name}{suffix},active,{start},{end},{by_sis}\n"

    return row


def _courses(ctx: GenContext) -> RowFn:
    salt, sis, deleted = ctx.salt, ctx.sis, ctx.deleted
    ncourses = ctx.sizes.courses
    course_sis, code, name = ctx.course_sis, ctx.course_code, ctx.course_name
    ok = ctx.course_ok

    def row(i: int) -> str:
        c = i % ncourses
        if ok is not None and not ok[c]:
            return ""
        h = ((i ^ salt) * 2654435761) & _MASK32
        h ^= h >> 15
        status = "active" if h % 9 else "unpublished"
        if h % 41 == 0:
            if not deleted:
                return ""
            status = "deleted"
        acc = ACCOUNTS_BY_ID[course_account(c)]
        term = TERMS_BY_ID[course_term(c)]
        sis_id = course_sis[c] if i < ncourses else f"{course_sis[c]}-{i // ncourses}"
        integ = f"CI{i:06d}" if h % 4 == 0 else ""
        start, end = (term.start or "", term.end or "") if h % 5 == 0 else ("", "")
        blueprint = "" if h % 13 else "BP-" + course_sis[(c + 1) % ncourses]
        fmt = ("on_campus", "online", "blended")[h % 3]
        if sis:
            st = "active" if status == "unpublished" else status
            return (
                f"{sis_id},{integ},{code[c]},{name[c]},{acc.sis_id or ''},{term.sis_id or ''},{st},"
                f"{start},{end},{fmt},{blueprint}\n"
            )
        return (
            f"{200000 + i},{sis_id},{integ},{code[c]},{name[c]},{acc.id},{acc.sis_id or ''},{term.id},"
            f"{term.sis_id or ''},{status},{start},{end},{fmt},{blueprint},true\n"
        )

    return row


def _sections(ctx: GenContext) -> RowFn:
    salt, sis, deleted = ctx.salt, ctx.sis, ctx.deleted
    ncourses = ctx.sizes.courses
    course_sis = ctx.course_sis
    ok = ctx.course_ok
    section_course, section_name = ctx.section_course, ctx.section_name

    def row(i: int) -> str:
        c = section_course(i) % ncourses
        if ok is not None and not ok[c]:
            return ""
        h = ((i ^ salt) * 2654435761) & _MASK32
        h ^= h >> 15
        status = "active"
        if h % 47 == 0:
            if not deleted:
                return ""
            status = "deleted"
        acc = ACCOUNTS_BY_ID[course_account(c)]
        sec_sis = f"{course_sis[c]}-S{i:06d}"
        integ = f"SI{i:06d}" if h % 4 == 0 else ""
        sec_name = section_name(i)
        if sis:
            return f"{sec_sis},{course_sis[c]},{integ},{sec_name},{status},,\n"
        return (
            f"{300000 + i},{sec_sis},{integ},{200000 + c},{course_sis[c]},{sec_name},{status},,,"
            f"{acc.id},{acc.sis_id or ''},true\n"
        )

    return row


_ROLES = (
    ("student", 3, "StudentEnrollment"),
    ("teacher", 4, "TeacherEnrollment"),
)


def _enrollments(ctx: GenContext) -> RowFn:
    salt, sis, deleted = ctx.salt, ctx.sis, ctx.deleted
    nsections, students = ctx.sizes.sections, ctx.sizes.student_enrollments
    sec = ctx.section_parts()
    ok, course, section = sec.ok, sec.course, sec.section
    teacher_user = ctx.teacher_user
    stride = ctx.stride

    def row(j: int) -> str:
        if j < students or j >= students + nsections:
            u = j // 5
            # Inlined GenContext.student_section: this is the hottest loop.
            s = (u * 7919 + salt + (j % 5) * stride) % nsections
            role, base = "student,3", "StudentEnrollment"
        else:
            s = j - students
            u = teacher_user(s)
            role, base = "teacher,4", "TeacherEnrollment"
        if not ok[s]:
            return ""
        h = ((j ^ salt) * 2246822519) & _MASK32
        h ^= h >> 13
        status = "active" if h % 31 else "completed"
        if h % 97 == 0:
            if not deleted:
                return ""
            status = "deleted"
        by_sis = h % 17 != 0
        if sis:
            if not by_sis:
                return ""
            return f"{sec.course_sis[s]},U{u:07d},{role},{sec.sis[s]},{status},,false\n"
        return (
            f"{course[s]}{100000 + u},U{u:07d},{role},{section[s]}{status},,,"
            f"{'true' if by_sis else 'false'},{base},false\n"
        )

    return row


def _group_categories(ctx: GenContext) -> RowFn:
    sis, ncourses, course_sis, ok = ctx.sis, ctx.sizes.courses, ctx.course_sis, ctx.course_ok

    def row(i: int) -> str:
        c = (i * 4) % ncourses
        if ok is not None and not ok[c]:
            return ""
        acc = ACCOUNTS_BY_ID[course_account(c)]
        name = ("Project Groups", "Study Groups", "Lab Partners")[i % 3]
        if sis:
            return f"GC{i:06d},{acc.sis_id or ''},{course_sis[c]},{name},active\n"
        return f"{400000 + i},GC{i:06d},{acc.id},{acc.sis_id or ''},{200000 + c},{course_sis[c]},{name},active,true\n"

    return row


def _groups(ctx: GenContext) -> RowFn:
    sis, ncourses, course_sis, ok = ctx.sis, ctx.sizes.courses, ctx.course_sis, ctx.course_ok

    def row(i: int) -> str:
        gc = i // 4
        c = (gc * 4) % ncourses
        if ok is not None and not ok[c]:
            return ""
        acc = ACCOUNTS_BY_ID[course_account(c)]
        name = f"Group {i % 4 + 1}"
        if sis:
            return f"G{i:07d},GC{gc:06d},{acc.sis_id or ''},{course_sis[c]},{name},available\n"
        return (
            f"{500000 + i},G{i:07d},{400000 + gc},GC{gc:06d},{acc.id},{acc.sis_id or ''},{200000 + c},"
            f"{course_sis[c]},{name},available,true\n"
        )

    return row


def _group_membership(ctx: GenContext) -> RowFn:
    sis, salt = ctx.sis, ctx.salt
    ngroups, nusers = ctx.sizes.groups, ctx.sizes.users
    ncourses, ok = ctx.sizes.courses, ctx.course_ok

    def row(i: int) -> str:
        g = i % ngroups
        if ok is not None and not ok[((g // 4) * 4) % ncourses]:
            return ""
        h = ((i ^ salt) * 2654435761) & _MASK32
        u = (h ^ (h >> 15)) % nusers
        if sis:
            return f"G{g:07d},U{u:07d},accepted\n"
        return f"{500000 + g},G{g:07d},{100000 + u},U{u:07d},accepted,true\n"

    return row


def _xlist(ctx: GenContext) -> RowFn:
    sis, nsections, ncourses = ctx.sis, ctx.sizes.sections, ctx.sizes.courses
    course_sis, ok, section_course = ctx.course_sis, ctx.course_ok, ctx.section_course

    def row(i: int) -> str:
        s = (i * 20 + 7) % nsections
        target = (section_course(s) + 1) % ncourses
        if ok is not None and not ok[target]:
            return ""
        own = section_course(s) % ncourses
        sec_sis = f"{course_sis[own]}-S{s:06d}"
        if sis:
            return f"{course_sis[target]},{sec_sis},active\n"
        return f"{200000 + target},{course_sis[target]},{300000 + s},{sec_sis},active,true\n"

    return row


def _user_observers(ctx: GenContext) -> RowFn:
    sis, nusers = ctx.sis, ctx.sizes.users

    def row(i: int) -> str:
        observer = (i * 40 + 3) % nusers
        student = (i * 40 + 4) % nusers
        if sis:
            return f"U{observer:07d},U{student:07d},active\n"
        return f"{100000 + observer},U{observer:07d},{100000 + student},U{student:07d},active,true\n"

    return row


def _admins(ctx: GenContext) -> RowFn:
    sis, nusers, full = ctx.sis, ctx.sizes.users, ctx.full
    salt = ctx.salt

    def row(i: int) -> str:
        u = (i * 97) % nusers
        h = ((u ^ salt) * 2654435761) & _MASK32
        h ^= h >> 15
        acc = ACCOUNTS[i % len(ACCOUNTS)]
        role, role_id = ("AccountAdmin", 1) if i % 3 == 0 else ("Course Designer Admin", 9)
        if sis:
            return f"U{u:07d},{acc.sis_id or ''},{role_id},{role},active\n"
        return f"{full[h & 4095]},{100000 + u},U{u:07d},{acc.id},{acc.sis_id or ''},{role_id},{role},active,true\n"

    return row


# --- report tables ----------------------------------------------------------------


def _grades(ctx: GenContext, periods: bool) -> RowFn:
    salt, full = ctx.salt, ctx.full
    sec = ctx.section_parts()
    student_section = ctx.student_section

    def row(j: int) -> str:
        s = student_section(j)
        if not sec.ok[s]:
            return ""
        u = j // 5
        h = ((j ^ salt) * 2654435761) & _MASK32
        h ^= h >> 15
        hu = ((u ^ salt) * 2654435761) & _MASK32
        hu ^= hu >> 15
        current = f"{55 + h % 45}.{(h >> 8) % 100:02d}"
        final = f"{50 + (h >> 4) % 50}.{(h >> 12) % 100:02d}"
        state = "active" if h % 23 else "concluded"
        base = f"{full[hu & 4095]},{100000 + u},U{u:07d},{sec.grade[s]}"
        if periods:
            q1 = f"{60 + (h >> 3) % 40}.{(h >> 9) % 100:02d}"
            q2 = f"{60 + (h >> 5) % 40}.{(h >> 11) % 100:02d}"
            return f"{base},Standard Quarters,1,{q1},{q1},{q2},{q2},{current},{final}\n"
        return f"{base},{current},{final},{state}\n"

    return row


def _last_user_access(ctx: GenContext) -> RowFn:
    salt, full, stamps = ctx.salt, ctx.full, ctx.timestamps
    listed = ctx.users_enrolled_in(ctx.course_ok)  # sub-account and term

    def row(i: int) -> str:
        if listed is not None and not listed[i]:
            return ""
        h = ((i ^ salt) * 2654435761) & _MASK32
        h ^= h >> 15
        last = stamps[h & 255] if h % 10 else ""
        ip = f"10.{(h >> 8) & 255}.{(h >> 16) & 255}.{(h >> 24) & 255}" if last else ""
        return f"{100000 + i},U{i:07d},{full[h & 4095]},{last},{ip}\n"

    return row


def _last_enrollment_activity(ctx: GenContext) -> RowFn:
    salt, full, stamps = ctx.salt, ctx.full, ctx.timestamps
    course_sis, course_name = ctx.course_sis, ctx.course_name
    sec, student_section = ctx.section_parts(), ctx.student_section

    def row(j: int) -> str:
        s = student_section(j)
        if not sec.ok[s]:
            return ""
        u, c = j // 5, sec.course_index[s]
        hu = ((u ^ salt) * 2654435761) & _MASK32
        hu ^= hu >> 15
        h = (j * 2246822519) & 255
        return f"{100000 + u},U{u:07d},{full[hu & 4095]},{200000 + c},{course_sis[c]},{course_name[c]},{stamps[h]}\n"

    return row


def _outcome_export(ctx: GenContext) -> RowFn:
    def row(i: int) -> str:
        if i % 10 == 0:
            return f"grp_{i:05d},group,Outcome Group {i // 10},Outcomes of group {i // 10},,,,active,,,\n"
        parent = f"grp_{i - i % 10:05d}"
        ratings = '"4.0,Exceeds Mastery,3.0,Mastery,2.0,Near Mastery,1.0,Below Mastery"'
        return (
            f"out_{i:05d},outcome,Outcome {i},Students can demonstrate skill {i},Skill {i},"
            f"decaying_average,65,active,{parent},{ratings},3.0\n"
        )

    return row


def _outcome_results(ctx: GenContext) -> RowFn:
    salt, full, stamps, section_name = ctx.salt, ctx.full, ctx.timestamps, ctx.section_name
    course_sis, course_name = ctx.course_sis, ctx.course_name
    sec, student_section = ctx.section_parts(), ctx.student_section

    def row(j: int) -> str:
        s = student_section(j)
        if not sec.ok[s]:
            return ""
        u, c = j // 5, sec.course_index[s]
        h = ((j ^ salt) * 2654435761) & _MASK32
        h ^= h >> 15
        hu = ((u ^ salt) * 2654435761) & _MASK32
        hu ^= hu >> 15
        outcome = h % 40
        return (
            f"{full[hu & 4095]},{100000 + u},U{u:07d},Assignment {h % 12 + 1},{600000 + c * 12 + h % 12},"
            f"{stamps[h & 255]},{h % 11},Outcome {outcome},{700000 + outcome},1,{h % 5}.0,"
            f"{course_name[c]},{200000 + c},{course_sis[c]},{section_name(s)},{300000 + s},{course_sis[c]}-S{s:06d}\n"
        )

    return row


def _course_list(pick: int, extra: Callable[[GenContext, int, int], str]) -> Callable[[GenContext], RowFn]:
    """Course reports that list a deterministic subset of courses (every ``pick``-th)."""

    def make(ctx: GenContext) -> RowFn:
        salt, ok, ncourses = ctx.salt, ctx.course_ok, ctx.sizes.courses
        course_sis, code, name = ctx.course_sis, ctx.course_code, ctx.course_name

        def row(i: int) -> str:
            c = i % ncourses
            h = ((i ^ salt) * 2654435761) & _MASK32
            h ^= h >> 15
            if h % pick or (ok is not None and not ok[c]):
                return ""
            acc = ACCOUNTS_BY_ID[course_account(c)]
            return (
                f"{200000 + i},{course_sis[c]},{code[c]},{name[c]},{extra(ctx, i, h)}"
                f"{acc.id},{acc.sis_id or ''},{csv_field(acc.name)}\n"
            )

        return row

    return make


def _stamp(ctx: GenContext, _i: int, h: int) -> str:
    return ctx.timestamps[h & 255] + ","


def _storage_mb(_ctx: GenContext, _i: int, h: int) -> str:
    return f"{h % 5000}.{(h >> 12) % 100:02d},"


def _no_extra(_ctx: GenContext, _i: int, _h: int) -> str:
    return ""


def _enrollment_people(pick: int, with_state: bool) -> Callable[[GenContext], RowFn]:
    """Reports listing a subset of student enrollments with user, course and section."""

    def make(ctx: GenContext) -> RowFn:
        salt, full, section_name = ctx.salt, ctx.full, ctx.section_name
        course_sis, course_name = ctx.course_sis, ctx.course_name
        sec, student_section = ctx.section_parts(), ctx.student_section

        def row(j: int) -> str:
            h = ((j ^ salt) * 2654435761) & _MASK32
            h ^= h >> 15
            if h % pick:
                return ""
            s = student_section(j)
            if not sec.ok[s]:
                return ""
            u, c = j // 5, sec.course_index[s]
            hu = ((u ^ salt) * 2654435761) & _MASK32
            hu ^= hu >> 15
            state = ",active" if with_state else ""
            return (
                f"{100000 + u},U{u:07d},{full[hu & 4095]},{300000 + s},{course_sis[c]}-S{s:06d},{section_name(s)},"
                f"{200000 + c},{course_sis[c]},{course_name[c]}{state}\n"
            )

        return row

    return make


def _eportfolio(ctx: GenContext) -> RowFn:
    salt, full, stamps = ctx.salt, ctx.full, ctx.timestamps

    def row(i: int) -> str:
        h = ((i ^ salt) * 2654435761) & _MASK32
        h ^= h >> 15
        if h % 9:
            return ""
        return (
            f"{800000 + i},Portfolio of U{i:07d},{100000 + i},{full[h & 4095]},U{i:07d},"
            f"{stamps[h & 255]},{stamps[(h >> 8) & 255]},{'true' if h % 2 else 'false'},active\n"
        )

    return row


def _user_access_tokens(ctx: GenContext) -> RowFn:
    salt, full, stamps = ctx.salt, ctx.full, ctx.timestamps

    def row(i: int) -> str:
        h = ((i ^ salt) * 2654435761) & _MASK32
        h ^= h >> 15
        if h % 4:
            return ""
        key = h % 6
        return (
            f"{100000 + i},{full[h & 4095]},{h % 9000 + 1000:04d},never,{stamps[(h >> 8) & 255]},"
            f"{900 + key},Integration {key}\n"
        )

    return row


def _lti(ctx: GenContext) -> RowFn:
    ncourses, course_name = ctx.sizes.courses, ctx.course_name

    def row(i: int) -> str:
        tool = i % 7
        if i % 5 == 0:
            return (
                f"account,1,Simulated University,,Tool {tool},{1000 + i},2026-01-05T10:00:00-07:00,"
                f"public,https://tool{tool}.example.com/launch,\n"
            )
        c = (i * 7) % ncourses
        return (
            f"course,{200000 + c},,{course_name[c]},Tool {tool},{1000 + i},2026-02-09T11:30:00-07:00,"
            f"name_only,https://tool{tool}.example.com/launch,\n"
        )

    return row


def _developer_keys(ctx: GenContext) -> RowFn:
    def row(i: int) -> str:
        return (
            f"{900 + i},Integration {i},{'LtiKey' if i % 2 else 'ApiKey'},"
            f"{'true' if i % 3 else 'false'},https://integration{i}.example.com,1\n"
        )

    return row


def _sis(
    name: str,
    header: str,
    sis_header: str,
    count: Callable[[Sizes], int],
    make: Callable[[GenContext], RowFn],
) -> Table:
    return Table(name, header, sis_header, count, make)


_COURSE_LIST_HEAD = "course id,course sis id,short name,long name,"
_ACCOUNT_TAIL = "account id,account sis id,account name"

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        _sis(
            "users",
            "canvas_user_id,user_id,integration_id,authentication_provider_id,login_id,first_name,last_name,"
            "full_name,sortable_name,short_name,email,status,created_by_sis",
            "user_id,integration_id,authentication_provider_id,login_id,password,first_name,last_name,"
            "full_name,sortable_name,short_name,email,status",
            lambda s: s.users,
            _users,
        ),
        _sis(
            "accounts",
            "canvas_account_id,account_id,canvas_parent_id,parent_account_id,name,status,created_by_sis",
            "account_id,parent_account_id,name,status",
            lambda s: len(ACCOUNTS) - 1,
            _accounts,
        ),
        _sis(
            "terms",
            "canvas_term_id,term_id,name,status,start_date,end_date,created_by_sis",
            "term_id,name,status,start_date,end_date",
            lambda s: len(TERMS),
            _terms,
        ),
        _sis(
            "courses",
            "canvas_course_id,course_id,integration_id,short_name,long_name,canvas_account_id,account_id,"
            "canvas_term_id,term_id,status,start_date,end_date,course_format,blueprint_course_id,created_by_sis",
            "course_id,integration_id,short_name,long_name,account_id,term_id,status,start_date,end_date,"
            "course_format,blueprint_course_id",
            lambda s: s.courses,
            _courses,
        ),
        _sis(
            "sections",
            "canvas_section_id,section_id,integration_id,canvas_course_id,course_id,name,status,start_date,"
            "end_date,canvas_account_id,account_id,created_by_sis",
            "section_id,course_id,integration_id,name,status,start_date,end_date",
            lambda s: s.sections,
            _sections,
        ),
        _sis(
            "enrollments",
            "canvas_course_id,course_id,canvas_user_id,user_id,role,role_id,canvas_section_id,section_id,"
            "status,canvas_associated_user_id,associated_user_id,created_by_sis,base_role_type,"
            "limit_section_privileges",
            "course_id,user_id,role,role_id,section_id,status,associated_user_id,limit_section_privileges",
            lambda s: s.enrollments,
            _enrollments,
        ),
        _sis(
            "groups",
            "canvas_group_id,group_id,canvas_group_category_id,group_category_id,canvas_account_id,account_id,"
            "canvas_course_id,course_id,name,status,created_by_sis",
            "group_id,group_category_id,account_id,course_id,name,status",
            lambda s: s.groups,
            _groups,
        ),
        _sis(
            "group_categories",
            "canvas_group_category_id,group_category_id,canvas_account_id,account_id,canvas_course_id,"
            "course_id,category_name,status,created_by_sis",
            "group_category_id,account_id,course_id,category_name,status",
            lambda s: s.group_categories,
            _group_categories,
        ),
        _sis(
            "group_membership",
            "canvas_group_id,group_id,canvas_user_id,user_id,status,created_by_sis",
            "group_id,user_id,status",
            lambda s: s.group_memberships,
            _group_membership,
        ),
        _sis(
            "xlist",
            "canvas_xlist_course_id,xlist_course_id,canvas_section_id,section_id,status,created_by_sis",
            "xlist_course_id,section_id,status",
            lambda s: s.xlists,
            _xlist,
        ),
        _sis(
            "user_observers",
            "canvas_observer_id,observer_id,canvas_student_id,student_id,status,created_by_sis",
            "observer_id,student_id,status",
            lambda s: s.observers,
            _user_observers,
        ),
        _sis(
            "admins",
            "admin_user_name,admin_canvas_user_id,admin_sis_user_id,canvas_account_id,account_id,role_id,"
            "role,status,created_by_sis",
            "user_id,account_id,role_id,role,status",
            lambda s: s.admins,
            _admins,
        ),
        Table(
            "grade_export",
            "student name,student id,student sis,course,course id,course sis,section,section id,section sis,"
            "term,term id,term sis,current score,final score,enrollment state",
            None,
            lambda s: s.student_enrollments,
            lambda ctx: _grades(ctx, periods=False),
        ),
        Table(
            "mgp_grades",
            "student name,student id,student sis,course,course id,course sis,section,section id,section sis,"
            "term,term id,term sis,grading period set,grading period set id,Quarter 1 current score,"
            "Quarter 1 final score,Quarter 2 current score,Quarter 2 final score,current score,final score",
            None,
            lambda s: s.student_enrollments,
            lambda ctx: _grades(ctx, periods=True),
        ),
        Table(
            "last_user_access",
            "user id,user sis id,user name,last access at,last ip",
            None,
            lambda s: s.users,
            _last_user_access,
        ),
        Table(
            "last_enrollment_activity",
            "user id,user sis id,user name,course id,course sis id,course name,last activity",
            None,
            lambda s: s.student_enrollments,
            _last_enrollment_activity,
        ),
        Table(
            "outcome_export",
            "vendor_guid,object_type,title,description,display_name,calculation_method,calculation_int,"
            "workflow_state,parent_guids,ratings,mastery_points",
            None,
            lambda s: 40,
            _outcome_export,
        ),
        Table(
            "outcome_results",
            "student name,student id,student sis id,assignment title,assignment id,submission date,"
            "submission score,learning outcome name,learning outcome id,attempt,outcome score,course name,"
            "course id,course sis id,section name,section id,section sis id",
            None,
            lambda s: s.student_enrollments,
            _outcome_results,
        ),
        Table(
            "student_assignment_outcome_map",
            "student name,student id,student sis id,assignment title,assignment id,submission date,"
            "submission score,learning outcome name,learning outcome id,attempt,outcome score,course name,"
            "course id,course sis id,section name,section id,section sis id",
            None,
            lambda s: s.student_enrollments,
            _outcome_results,
        ),
        Table(
            "recently_deleted_courses",
            _COURSE_LIST_HEAD + "deleted at," + _ACCOUNT_TAIL,
            None,
            lambda s: s.courses,
            _course_list(10, _stamp),
        ),
        Table(
            "unpublished_courses",
            _COURSE_LIST_HEAD + "created at," + _ACCOUNT_TAIL,
            None,
            lambda s: s.courses,
            _course_list(6, _stamp),
        ),
        Table(
            "public_courses",
            _COURSE_LIST_HEAD + _ACCOUNT_TAIL,
            None,
            lambda s: s.courses,
            _course_list(8, _no_extra),
        ),
        Table(
            "unused_courses",
            _COURSE_LIST_HEAD + "created at," + _ACCOUNT_TAIL,
            None,
            lambda s: s.courses,
            _course_list(7, _stamp),
        ),
        Table(
            "course_storage",
            _COURSE_LIST_HEAD + "storage used in MB," + _ACCOUNT_TAIL,
            None,
            lambda s: s.courses,
            _course_list(1, _storage_mb),
        ),
        Table(
            "students_with_no_submissions",
            "user id,user sis id,user name,section id,section sis id,section name,course id,course sis id,"
            "course name,enrollment state",
            None,
            lambda s: s.student_enrollments,
            _enrollment_people(4, with_state=True),
        ),
        Table(
            "zero_activity",
            "user id,user sis id,user name,section id,section sis id,section name,course id,course sis id,"
            "course name",
            None,
            lambda s: s.student_enrollments,
            _enrollment_people(6, with_state=False),
        ),
        Table(
            "eportfolio",
            "eportfolio id,eportfolio name,author id,author name,author sis id,created at,updated at,"
            "is public,status",
            None,
            lambda s: s.users,
            _eportfolio,
        ),
        Table(
            "user_access_tokens",
            "user id,user name,token hint,expiration,last used,dev key id,dev key name",
            None,
            lambda s: s.users,
            _user_access_tokens,
        ),
        Table(
            "lti",
            "context type,context id,account name,course name,tool type name,tool type id,tool created at,"
            "privacy level,launch url,custom fields",
            None,
            lambda s: 5 + s.courses // 10,
            _lti,
        ),
        Table(
            "developer_keys",
            "id,name,type,enabled,redirect uri,account id",
            None,
            lambda s: 12,
            _developer_keys,
        ),
    )
}


@dataclass(frozen=True)
class Written:
    rows: int
    bytes: int


class GenerationCancelled(Exception):
    """The simulator is stopping: abandon the file being written."""


def write_table(
    out: BinaryIO,
    table: Table,
    ctx: GenContext,
    pad_to_bytes: int | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> Written:
    """Stream one table as CSV into ``out``, batch by batch.

    Without padding it writes the table's natural rows. With ``pad_to_bytes`` it
    keeps producing further (deterministic) rows until at least that many bytes are
    written. ``cancelled`` is checked between batches.
    """
    row = table.make_row(ctx)
    natural = table.count(ctx.sizes)
    header = table.header_for(ctx).encode()
    out.write(header)
    written, rows, i = len(header), 0, 0
    empty_batches = 0
    while True:
        need_more = pad_to_bytes is not None and written < pad_to_bytes
        stop = i + BATCH_ROWS if need_more else min(i + BATCH_ROWS, natural)
        if stop <= i:
            break
        if cancelled is not None and cancelled():
            raise GenerationCancelled(table.name)
        data = "".join(map(row, range(i, stop))).encode()
        i = stop
        if data:
            out.write(data)
            written += len(data)
            rows += data.count(b"\n")
            empty_batches = 0
        elif i > natural:
            # Padding a table whose scope yields no rows at all: give up, not spin.
            empty_batches += 1
            if empty_batches > 64:
                break
    return Written(rows, written)
