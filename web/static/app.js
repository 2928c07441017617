// The Walletless counter page: vanilla JavaScript, no library, no network beyond posd.
// The session lives in an HttpOnly cookie the script cannot read; nothing is kept in
// storage except the chosen language.
'use strict';

const T = {
  en: {
    language: 'Language', signin: 'Sign in', signout: 'Sign out', name: 'Name', pin: 'PIN', usetoken: 'Sign in with a token', token: 'Token',
    currency: 'Currency', clear: 'Clear', back: 'Delete last digit', scan: "Scan the customer's code", showqr: 'Show a QR to the customer',
    code: "Customer's code (scanner or keyboard)", apply: 'Apply', democustomer: 'Demo customer', cancel: 'Cancel', reprint: 'Reprint', newsale: 'New sale',
    today: "Today's sales", time: 'Time', amount: 'Amount', status: 'Status', actions: 'Actions', batch: 'Batch', closebatch: 'Close the batch (Z report)',
    refund: 'Refund', refundamount: 'Amount to refund', ok: 'OK', online: 'Online', offline: 'Offline', queued: '{n} waiting to sync', oldest: 'oldest {age}',
    expired: 'Your session has expired. Sign in again.', badsignin: 'Wrong name, PIN or token.', zero: 'Enter an amount first.',
    reused: 'This code was already used — ask the customer to refresh it.', refusedscan: 'Scan refused: {reason}', closed: 'Batch closed.',
    reprinted: 'Receipt sent to the printer.', refunded: 'Refund recorded.', nosale: 'No sales yet today.', demohint: 'Sample code (demo only):',
    confirmclose: 'Close the batch now? Sales still running must finish first.', min: '{n} min', sec: '{n} s', hr: '{n} h',
    s_waiting_for_code: ["Scan the customer's code", 'Ask the customer to show the payment code in their app, and scan it.'],
    s_present: ['Customer: scan this QR', 'Let the customer scan the QR with their wallet app. Wait for approval.'],
    s_authorizing: ['Authorizing…', 'Wait. Do not hand over the goods yet.'],
    s_approved: ['Approved', 'Paid. Hand over the goods and the receipt.'],
    s_declined: ['Declined', 'Not paid. Ask for another payment method.'],
    s_stored_offline: ['Stored offline', 'Accepted while offline; it is sent when the link is back. Hand over the goods.'],
    s_refused: ['Refused — ask for another method', 'The terminal is offline and this payment cannot be accepted offline. Ask for another payment method.'],
    s_in_doubt: ['In doubt', 'No answer yet. Do not charge again and do not hand over the goods; the terminal is asking. Wait.'],
    s_reversal_pending: ['Not paid — reversing', 'The payment is being reversed. Ask for another payment method.'],
    s_reversed: ['Reversed', 'Not paid; the payment was reversed. Ask for another payment method.'],
    s_reversal_failed: ['Call the manager', 'The reversal was refused. The manager must resolve this sale.'],
    s_cancelled: ['Cancelled', 'Nothing was charged.'],
  },
  ko: {
    language: '언어', signin: '로그인', signout: '로그아웃', name: '이름', pin: 'PIN', usetoken: '토큰으로 로그인', token: '토큰',
    currency: '통화', clear: '지우기', back: '한 자리 지우기', scan: '고객 결제코드 스캔', showqr: '고객에게 QR 보여주기',
    code: '고객 코드 (스캐너 또는 키보드)', apply: '적용', democustomer: '데모 고객', cancel: '취소', reprint: '재인쇄', newsale: '새 판매',
    today: '오늘의 판매', time: '시간', amount: '금액', status: '상태', actions: '작업', batch: '정산', closebatch: '정산 마감 (Z 리포트)',
    refund: '환불', refundamount: '환불 금액', ok: '확인', online: '온라인', offline: '오프라인', queued: '동기화 대기 {n}건', oldest: '가장 오래된 것 {age}',
    expired: '세션이 만료되었습니다. 다시 로그인하세요.', badsignin: '이름, PIN 또는 토큰이 틀렸습니다.', zero: '먼저 금액을 입력하세요.',
    reused: '이미 사용된 코드입니다 — 고객에게 코드를 새로고침해 달라고 하세요.', refusedscan: '스캔 거부: {reason}', closed: '정산이 마감되었습니다.',
    reprinted: '영수증을 프린터로 보냈습니다.', refunded: '환불이 기록되었습니다.', nosale: '오늘 판매가 없습니다.', demohint: '샘플 코드 (데모 전용):',
    confirmclose: '지금 정산을 마감할까요? 진행 중인 판매는 먼저 끝나야 합니다.', min: '{n}분', sec: '{n}초', hr: '{n}시간',
    s_waiting_for_code: ['고객 결제코드를 스캔하세요', '고객에게 앱의 결제코드를 보여달라고 하고 스캔하세요.'],
    s_present: ['고객님, 이 QR을 스캔하세요', '고객이 지갑 앱으로 QR을 스캔하게 하고 승인을 기다리세요.'],
    s_authorizing: ['승인 중…', '기다리세요. 아직 상품을 건네지 마세요.'],
    s_approved: ['승인됨', '결제 완료. 상품과 영수증을 건네세요.'],
    s_declined: ['거절됨', '결제되지 않았습니다. 다른 결제 수단을 요청하세요.'],
    s_stored_offline: ['오프라인 저장', '오프라인 중 승인되었고 연결되면 전송됩니다. 상품을 건네세요.'],
    s_refused: ['거부됨 — 다른 결제 수단 요청', '단말기가 오프라인이라 이 결제를 받을 수 없습니다. 다른 결제 수단을 요청하세요.'],
    s_in_doubt: ['확인 중 (불확실)', '아직 응답이 없습니다. 다시 결제하지 말고 상품도 건네지 마세요. 기다리세요.'],
    s_reversal_pending: ['미결제 — 취소 중', '결제를 되돌리는 중입니다. 다른 결제 수단을 요청하세요.'],
    s_reversed: ['취소됨 (역거래)', '결제되지 않았고 되돌려졌습니다. 다른 결제 수단을 요청하세요.'],
    s_reversal_failed: ['관리자를 부르세요', '역거래가 거부되었습니다. 관리자가 처리해야 합니다.'],
    s_cancelled: ['취소됨', '청구된 금액이 없습니다.'],
  },
  ja: {
    language: '言語', signin: 'サインイン', signout: 'サインアウト', name: '名前', pin: 'PIN', usetoken: 'トークンでサインイン', token: 'トークン',
    currency: '通貨', clear: 'クリア', back: '1桁消す', scan: 'お客様のコードを読み取る', showqr: 'お客様にQRを表示',
    code: 'お客様のコード（スキャナーまたはキーボード）', apply: '適用', democustomer: 'デモ客', cancel: '取消', reprint: '再印刷', newsale: '新しい会計',
    today: '本日の売上', time: '時刻', amount: '金額', status: '状態', actions: '操作', batch: '締め', closebatch: '締め処理（Zレポート）',
    refund: '返金', refundamount: '返金額', ok: 'OK', online: 'オンライン', offline: 'オフライン', queued: '同期待ち {n} 件', oldest: '最古 {age}',
    expired: 'セッションの有効期限が切れました。もう一度サインインしてください。', badsignin: '名前、PIN、またはトークンが違います。', zero: '先に金額を入力してください。',
    reused: 'このコードは使用済みです — お客様にコードの更新をお願いしてください。', refusedscan: '読み取り拒否: {reason}', closed: '締め処理が完了しました。',
    reprinted: 'レシートをプリンターに送りました。', refunded: '返金を記録しました。', nosale: '本日の売上はまだありません。', demohint: 'サンプルコード（デモのみ）:',
    confirmclose: '今すぐ締めますか？処理中の会計は先に終わる必要があります。', min: '{n}分', sec: '{n}秒', hr: '{n}時間',
    s_waiting_for_code: ['お客様のコードを読み取ってください', 'アプリの支払いコードを見せてもらい、読み取ってください。'],
    s_present: ['お客様: このQRを読み取ってください', 'お客様のウォレットアプリでQRを読み取ってもらい、承認を待ってください。'],
    s_authorizing: ['承認中…', 'お待ちください。まだ商品を渡さないでください。'],
    s_approved: ['承認', '支払い済み。商品とレシートを渡してください。'],
    s_declined: ['拒否', '未払いです。別の支払い方法をお願いしてください。'],
    s_stored_offline: ['オフライン保存', 'オフラインで受け付けました。回線復旧後に送信されます。商品を渡してください。'],
    s_refused: ['お断り — 別の支払い方法を', '端末がオフラインのため、この支払いは受け付けられません。別の支払い方法をお願いしてください。'],
    s_in_doubt: ['確認中（不確定）', 'まだ応答がありません。再請求せず、商品も渡さずにお待ちください。'],
    s_reversal_pending: ['未払い — 取消中', '支払いを取り消しています。別の支払い方法をお願いしてください。'],
    s_reversed: ['取消済み', '未払いで、取り消されました。別の支払い方法をお願いしてください。'],
    s_reversal_failed: ['責任者を呼んでください', '取消が拒否されました。責任者の対応が必要です。'],
    s_cancelled: ['取消', '請求はありません。'],
  },
  zh: {
    language: '语言', signin: '登录', signout: '退出', name: '姓名', pin: 'PIN', usetoken: '用令牌登录', token: '令牌',
    currency: '货币', clear: '清除', back: '删除一位', scan: '扫描顾客付款码', showqr: '向顾客出示二维码',
    code: '顾客付款码（扫描枪或键盘）', apply: '提交', democustomer: '演示顾客', cancel: '取消', reprint: '重印', newsale: '新交易',
    today: '今日交易', time: '时间', amount: '金额', status: '状态', actions: '操作', batch: '结算', closebatch: '结算关账（Z 报表）',
    refund: '退款', refundamount: '退款金额', ok: '确定', online: '在线', offline: '离线', queued: '{n} 笔待同步', oldest: '最早 {age}',
    expired: '会话已过期，请重新登录。', badsignin: '姓名、PIN 或令牌错误。', zero: '请先输入金额。',
    reused: '此付款码已被使用 — 请顾客刷新付款码。', refusedscan: '扫码被拒：{reason}', closed: '已结算关账。',
    reprinted: '小票已发送到打印机。', refunded: '退款已记录。', nosale: '今日暂无交易。', demohint: '示例付款码（仅演示）：',
    confirmclose: '现在结算关账吗？进行中的交易须先完成。', min: '{n} 分钟', sec: '{n} 秒', hr: '{n} 小时',
    s_waiting_for_code: ['请扫描顾客付款码', '请顾客打开应用的付款码并扫描。'],
    s_present: ['顾客：请扫描此二维码', '请顾客用钱包应用扫描二维码，等待批准。'],
    s_authorizing: ['授权中…', '请稍候，先不要交付商品。'],
    s_approved: ['已批准', '已付款。请交付商品和小票。'],
    s_declined: ['已拒绝', '未付款。请顾客换一种付款方式。'],
    s_stored_offline: ['离线存储', '离线时已受理，联网后发送。可以交付商品。'],
    s_refused: ['已拒收 — 请换付款方式', '终端离线，无法离线受理此付款。请顾客换一种付款方式。'],
    s_in_doubt: ['结果待定', '尚无应答。不要重复收款，也不要交付商品，请等待。'],
    s_reversal_pending: ['未付款 — 冲正中', '正在冲正此付款。请顾客换一种付款方式。'],
    s_reversed: ['已冲正', '未付款，已冲正。请顾客换一种付款方式。'],
    s_reversal_failed: ['请叫店长', '冲正被拒绝，需要店长处理。'],
    s_cancelled: ['已取消', '未收取任何费用。'],
  },
};
// Each language's number locale: zh shows Hong Kong dollars as HK$.
const LOCALE = { en: 'en-US', ko: 'ko-KR', ja: 'ja-JP', zh: 'zh-HK' };
const TONE = { approved: 'ok', stored_offline: 'ok', declined: 'bad', refused: 'bad', reversal_pending: 'bad', reversed: 'bad', reversal_failed: 'bad',
  in_doubt: 'warn', cancelled: 'warn', waiting_for_code: 'wait', authorizing: 'wait' };

const $ = (id) => document.getElementById(id);
const state = { conf: null, lang: 'en', currency: 'KRW', digits: '', me: null, sale: null, status: null, es: null, seenRefusal: '', started: new Date().toISOString(), list: [] };

function t(key, vars) {
  let s = (T[state.lang] && T[state.lang][key]) || T.en[key] || key;
  if (vars) for (const k of Object.keys(vars)) s = s.replace('{' + k + '}', vars[k]);
  return s;
}

function fmt(minor, currency) {
  const nf = new Intl.NumberFormat(LOCALE[state.lang], { style: 'currency', currency });
  const d = nf.resolvedOptions().maximumFractionDigits;
  return nf.format(Number(minor) / Math.pow(10, d));
}

// parseAmount reads a typed amount in the shop's format ("₩12,000", "¥1,200",
// "HK$12.00") as minor units, or returns null.
function parseAmount(text, currency) {
  const d = new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits;
  const s = String(text).replace(/[^0-9.]/g, '');
  if (!/^\d+(\.\d*)?$/.test(s)) return null;
  const [whole, frac = ''] = s.split('.');
  if (frac.length > d) return null;
  const n = Number(whole) * Math.pow(10, d) + Number((frac + '0'.repeat(d)).slice(0, d) || 0);
  return Number.isSafeInteger(n) && n > 0 ? n : null;
}

function applyLanguage() {
  document.documentElement.lang = state.lang;
  for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll('[data-i18n-label]')) el.setAttribute('aria-label', t(el.dataset.i18nLabel));
  $('lang').value = state.lang;
  renderAmount();
  renderStatus();
  if (state.sale) renderSale();
  renderList();
}

function renderAmount() {
  $('amount').textContent = fmt(state.digits || '0', state.currency);
  $('amount').dataset.minor = state.digits || '0';
}

async function api(method, path, body) {
  const opt = { method, credentials: 'same-origin', headers: {} };
  if (method !== 'GET') { opt.headers['Content-Type'] = 'application/json'; opt.body = JSON.stringify(body || {}); }
  const r = await fetch(path, opt);
  let data = null;
  try { data = await r.json(); } catch (e) { data = null; }
  if (r.status === 401 && path !== '/v1/session') { showSignIn(t('expired')); throw new Error('signed out'); }
  if (!r.ok) { const err = new Error((data && data.error) || ('HTTP ' + r.status)); err.status = r.status; throw err; }
  return data;
}

function toast(msg) { $('toast').textContent = msg; clearTimeout(toast.h); toast.h = setTimeout(() => { $('toast').textContent = ''; }, 5000); }

function showSignIn(msg) {
  state.me = null;
  if (state.es) { state.es.close(); state.es = null; }
  $('counter').hidden = true; $('signout').hidden = true; $('who').textContent = '';
  $('signin').hidden = false; $('signin-msg').textContent = msg || '';
  $('name').focus();
}

async function signedIn(me) {
  state.me = me;
  $('signin').hidden = true; $('counter').hidden = false; $('signout').hidden = false;
  $('who').textContent = me.name + ' (' + me.role + ')';
  $('manager').hidden = me.role !== 'manager';
  $('pin').value = ''; $('token').value = '';
  connect();
  loadList();
}

async function signIn(body) {
  try {
    const r = await fetch('/v1/session', { method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    const data = await r.json();
    if (!r.ok) { $('signin-msg').textContent = r.status === 401 ? t('badsignin') : data.error; return; }
    signedIn(data);
  } catch (e) { $('signin-msg').textContent = String(e.message || e); }
}

function connect() {
  if (state.es) state.es.close();
  const es = new EventSource('/v1/events');
  state.es = es;
  es.addEventListener('status', (e) => { state.status = JSON.parse(e.data); renderStatus(); });
  es.addEventListener('sale', (e) => onSale(JSON.parse(e.data)));
  es.addEventListener('batch', () => loadList());
  // After a reconnect, read the followed sale and the list again: events sent while
  // the stream was down are not replayed.
  es.onopen = async () => {
    loadList();
    if (state.sale && rank(state.sale) < 4) { try { setSale(await api('GET', '/v1/sales/' + state.sale.id)); } catch (e) { /* shown elsewhere */ } }
  };
  es.onerror = async () => {
    if (es.readyState !== EventSource.CLOSED) return; // it reconnects by itself
    try { await api('GET', '/v1/session'); setTimeout(connect, 1000); } catch (e) { /* api() showed the sign-in */ }
  };
}

function age(iso) {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return t('sec', { n: s });
  if (s < 3600) return t('min', { n: Math.round(s / 60) });
  return t('hr', { n: Math.round(s / 3600) });
}

function renderStatus() {
  const st = state.status;
  const link = $('link');
  if (!st) { link.textContent = ''; return; }
  let text = st.online ? t('online') : t('offline');
  if (st.outbox_depth > 0) {
    text += ' · ' + t('queued', { n: st.outbox_depth });
    if (st.oldest_unsynced_at) text += ' · ' + t('oldest', { age: age(st.oldest_unsynced_at) });
  }
  link.textContent = text;
  link.className = 'badge ' + (st.online ? 'online' : 'offline');
  link.dataset.online = String(!!st.online);
  const r = st.last_refused_scan;
  if (r && r.at > state.started && r.at !== state.seenRefusal) {
    $('refused-text').textContent = /already used/i.test(r.reason) ? t('reused') : t('refusedscan', { reason: r.reason + ' (' + r.masked_code + ')' });
    $('refused').hidden = false;
    $('refused').dataset.at = r.at;
  }
}

// A sale's answer and its events travel on different connections and may arrive out
// of order: a later stage never gives way to an earlier one.
const RANK = { waiting_for_code: 0, authorizing: 1, in_doubt: 2, reversal_pending: 3, stored_offline: 3 };
function rank(s) { return s.status in RANK ? RANK[s.status] : 4; }
function setSale(sale) {
  const cur = state.sale;
  if (cur && cur.id === sale.id && rank(sale) < rank(cur) && Date.parse(sale.updated_at) <= Date.parse(cur.updated_at)) return;
  state.sale = sale; renderSale();
}

function onSale(sale) {
  const cur = state.sale;
  if (cur && cur.id === sale.id) { setSale(sale); }
  else if ((!cur || cur.status !== 'waiting_for_code') && (sale.status === 'waiting_for_code' || (sale.flow && sale.status === 'authorizing')) && sale.created_at >= state.started) {
    state.sale = sale; renderSale(); // a sale a register started: show it
  }
  loadList();
}

function renderSale() {
  const s = state.sale;
  $('entry').hidden = true; $('sale').hidden = false; $('sale').dataset.id = s.id;
  $('sale-amount').textContent = fmt(s.amount_minor, s.currency);
  let key = 's_' + s.status;
  if (s.flow === 'merchant_presented' && s.status === 'authorizing') key = 's_present';
  const [head, next] = t(key);
  const st = $('state');
  st.textContent = head; st.dataset.status = s.status; st.dataset.tone = TONE[s.status] || 'wait';
  let n = next;
  if (s.reason && ['declined', 'reversed', 'reversal_pending', 'reversal_failed', 'in_doubt'].includes(s.status)) n += ' (' + s.reason + ')';
  $('next').textContent = n;
  const showQR = s.flow === 'merchant_presented' && s.status === 'authorizing' && s.qr;
  const qr = $('qr');
  if (showQR) { if (qr.dataset.id !== s.id) { qr.src = '/v1/sales/' + s.id + '/qr.png'; qr.dataset.id = s.id; } qr.alt = t('s_present')[0]; qr.hidden = false; }
  else { qr.hidden = true; qr.removeAttribute('src'); qr.dataset.id = ''; }
  const waiting = s.status === 'waiting_for_code';
  $('codeform').hidden = !waiting;
  $('demo').hidden = !(waiting && state.conf && state.conf.demo);
  $('cancel').hidden = !(waiting || showQR);
  $('reprint').hidden = !s.status || !['approved', 'declined', 'stored_offline', 'refused', 'reversed'].includes(s.status);
  $('newsale').hidden = !(s.status && (s.status !== 'waiting_for_code' && !showQR && s.status !== 'authorizing'));
  if (waiting) $('code').focus();
}

function newSale() {
  state.sale = null; state.digits = '';
  $('sale').hidden = true; $('entry').hidden = false; $('demo-code').textContent = '';
  renderAmount();
  $('charge-scan').focus();
}

async function charge(flow) {
  if (!state.digits || Number(state.digits) <= 0) { toast(t('zero')); return; }
  try {
    const s = await api('POST', '/v1/sales', { amount_minor: Number(state.digits), currency: state.currency, flow });
    if (!state.sale || state.sale.id !== s.id) state.sale = null;
    setSale(s);
  } catch (e) { toast(e.message); }
}

function key(k) {
  if (k === 'C') state.digits = '';
  else if (k === 'back') state.digits = state.digits.slice(0, -1);
  else if (state.digits.length < 12) state.digits = (state.digits + k).replace(/^0+/, '');
  renderAmount();
}

async function loadList() {
  if (!state.me) return;
  try { const r = await api('GET', '/v1/sales'); state.list = r.sales || []; renderList(); } catch (e) { /* shown elsewhere */ }
}

function renderList() {
  const body = $('today-rows');
  body.textContent = '';
  if (!state.list.length) {
    const tr = body.insertRow(); const td = tr.insertCell(); td.colSpan = 4; td.textContent = t('nosale'); return;
  }
  for (const s of state.list) {
    const tr = body.insertRow();
    tr.dataset.id = s.id;
    tr.insertCell().textContent = new Date(s.created_at).toLocaleTimeString(LOCALE[state.lang]);
    let amt = fmt(s.amount_minor, s.currency);
    if (s.refunded_minor) amt += ' (−' + fmt(s.refunded_minor, s.currency) + ')';
    tr.insertCell().textContent = amt;
    tr.insertCell().textContent = t('s_' + s.status)[0];
    const td = tr.insertCell();
    if (['approved', 'declined', 'stored_offline', 'refused', 'reversed'].includes(s.status)) {
      const b = document.createElement('button'); b.type = 'button'; b.textContent = t('reprint'); b.onclick = () => reprint(s.id); td.append(b);
    }
    if (state.me && state.me.role === 'manager' && (s.status === 'approved' || s.status === 'stored_offline') && (s.refunded_minor || 0) < s.amount_minor) {
      const b = document.createElement('button'); b.type = 'button'; b.textContent = t('refund'); b.onclick = () => openRefund(s); td.append(b);
    }
  }
}

async function reprint(id) {
  try { await api('POST', '/v1/sales/' + id + '/reprint'); toast(t('reprinted')); } catch (e) { toast(e.message); }
}

let refundSale = null;
function openRefund(s) {
  refundSale = s;
  $('refund-amount').value = fmt(s.amount_minor - (s.refunded_minor || 0), s.currency);
  $('refund-msg').textContent = '';
  $('refund-dialog').showModal();
}

async function doRefund(ev) {
  ev.preventDefault();
  const s = refundSale;
  const minor = parseAmount($('refund-amount').value, s.currency);
  if (minor === null) { $('refund-msg').textContent = t('zero'); return; }
  try {
    await api('POST', '/v1/sales/' + s.id + '/refunds', { amount_minor: minor });
    $('refund-dialog').close(); toast(t('refunded')); loadList();
  } catch (e) { $('refund-msg').textContent = e.message; }
}

async function closeBatch() {
  $('close-confirm').hidden = true;
  try { const b = await api('POST', '/v1/batches/close'); $('zreport').textContent = b.report; toast(t('closed')); } catch (e) { toast(e.message); }
}

// A terminal that is not paired yet (docs/fleet.md) shows only this, full screen,
// instead of the keypad, and looks again every few seconds: once paired, posd serves
// the counter and the page reloads into it.
const UNPAIRED_TEXT = {
  en: ['Not paired yet', 'Scan the pairing QR from your fleet manager with the counter scanner.', 'This terminal needs', 'Hardware'],
  ko: ['아직 페어링되지 않음', '플릿 관리자가 준 페어링 QR을 카운터 스캐너로 스캔하세요.', '이 단말기에 필요한 것', '하드웨어'],
  ja: ['まだペアリングされていません', 'フリート管理者のペアリングQRをカウンターのスキャナーで読み取ってください。', 'この端末に必要なもの', 'ハードウェア'],
  zh: ['尚未配对', '请用柜台扫描器扫描车队管理员提供的配对二维码。', '本终端需要', '硬件'],
};
function showUnpaired(u) {
  const lang = localStorage.getItem('wl_lang') || (state.conf && state.conf.language) || 'en';
  const tx = UNPAIRED_TEXT[lang] || UNPAIRED_TEXT.en;
  $('signin').hidden = true; $('counter').hidden = true;
  $('unpaired').hidden = false;
  $('unpaired-h').textContent = tx[0]; $('unpaired-p').textContent = tx[1]; $('unpaired-needs-h').textContent = tx[2];
  $('unpaired-needs').replaceChildren(...(u.needs || []).map((n) => { const li = document.createElement('li'); li.textContent = n; return li; }));
  $('unpaired-error').hidden = !u.last_error; $('unpaired-error').textContent = u.last_error || '';
  $('unpaired-hw').textContent = u.hardware ? tx[3] + ': ' + u.hardware : '';
}
async function watchUnpaired() {
  try {
    const c = await (await fetch('/config.json', { cache: 'no-store' })).json();
    if (!c.unpaired) { location.reload(); return; }
    showUnpaired(c.unpaired);
  } catch (e) { /* posd is switching to the sale path: look again */ }
  setTimeout(watchUnpaired, 3000);
}

async function init() {
  state.conf = await (await fetch('/config.json')).json();
  if (state.conf.unpaired) { showUnpaired(state.conf.unpaired); setTimeout(watchUnpaired, 3000); return; }
  state.lang = localStorage.getItem('wl_lang') || state.conf.language;
  state.currency = state.conf.currencies[0];
  $('merchant').textContent = state.conf.merchant || 'Walletless';
  for (const c of state.conf.currencies) { const o = document.createElement('option'); o.value = c; o.textContent = c; $('currency').append(o); }
  $('lang').onchange = () => { state.lang = $('lang').value; localStorage.setItem('wl_lang', state.lang); applyLanguage(); };
  $('currency').onchange = () => { state.currency = $('currency').value; renderAmount(); };
  for (const b of document.querySelectorAll('#keypad button')) b.onclick = () => key(b.dataset.key);
  document.addEventListener('keydown', (e) => {
    if ($('counter').hidden || $('entry').hidden || e.target.matches('input, select, textarea')) return;
    if (/^[0-9]$/.test(e.key)) key(e.key);
    else if (e.key === 'Backspace') key('back');
    else if (e.key === 'Escape') key('C');
    else if (e.key === 'Enter' && e.target === document.body) charge('customer_presented');
  });
  $('charge-scan').onclick = () => charge('customer_presented');
  $('charge-qr').onclick = () => charge('merchant_presented');
  $('codeform').onsubmit = async (e) => {
    e.preventDefault();
    const code = $('code').value.trim(); $('code').value = '';
    if (!code || !state.sale) return;
    try { setSale(await api('POST', '/v1/sales/' + state.sale.id + '/code', { code })); } catch (err) { toast(/already used/i.test(err.message) ? t('reused') : err.message); }
  };
  $('demo-btn').onclick = async () => {
    try { const r = await api('GET', '/v1/demo/code'); $('demo-code').textContent = t('demohint') + ' ' + r.code; $('code').value = r.code; $('code').focus(); } catch (e) { toast(e.message); }
  };
  $('cancel').onclick = async () => { try { setSale(await api('POST', '/v1/sales/' + state.sale.id + '/cancel')); } catch (e) { toast(e.message); } };
  $('reprint').onclick = () => reprint(state.sale.id);
  $('newsale').onclick = newSale;
  $('refused-ok').onclick = () => { state.seenRefusal = $('refused').dataset.at; $('refused').hidden = true; };
  $('close').onclick = () => { $('close-confirm').hidden = false; $('close-no').focus(); };
  $('close-no').onclick = () => { $('close-confirm').hidden = true; };
  $('close-yes').onclick = closeBatch;
  $('refund-form').onsubmit = doRefund;
  $('refund-no').onclick = () => $('refund-dialog').close();
  $('signout').onclick = async () => { try { await api('DELETE', '/v1/session'); } catch (e) { /* signed out anyway */ } showSignIn(''); };
  $('pinform').onsubmit = (e) => { e.preventDefault(); signIn({ name: $('name').value.trim(), pin: $('pin').value }); };
  $('tokenform').onsubmit = (e) => { e.preventDefault(); signIn({ token: $('token').value.trim() }); };
  applyLanguage();
  try {
    const r = await fetch('/v1/session', { credentials: 'same-origin' });
    if (r.ok) signedIn(await r.json()); else showSignIn('');
  } catch (e) { showSignIn(''); }
}

// The badge's "oldest" age is redrawn from the browser's clock; no request is made.
setInterval(renderStatus, 15000);
window.walletless = { parseAmount, fmt };
init();
