// The Klaviyo card in Front's sidebar. Front's plugin SDK (the global `Front`) sends a context whenever the
// agent's selection changes; a single conversation names its main recipient. Every Front fact here is from
// https://dev.frontapp.com/reference/context-updates, /plugin-sdk-context, /plugin-sdk-conversation and
// /plugin-sdk-recipient (docs/vendors/front.md, "Sidebar plugin").
(function () {
  "use strict";

  var card = window.KlaviyoSidebarCard;
  if (window.parent === window || !window.Front) {
    card.say("Klaviyo", "This card shows inside Front: open a conversation there to see its contact's Klaviyo profile.");
    return;
  }
  // recipient handle types we can look a customer up by; any other (a social handle, ...) has no profile
  var KINDS = { email: "email", phone: "phone", sms: "phone", whatsapp: "phone" };

  function show(context) {
    if (!context || context.type !== "singleConversation") {
      card.say("Klaviyo", context && context.type === "multiConversations"
        ? "Several conversations are selected: open one to see its contact's Klaviyo profile."
        : "Open a conversation to see its contact's Klaviyo profile.");
      return;
    }
    var recipient = (context.conversation && context.conversation.recipient) || {};
    var kind = KINDS[recipient.type];
    var handle = typeof recipient.handle === "string" ? recipient.handle.trim() : "";
    if (!kind || !handle) {
      card.say("Klaviyo", "This conversation's contact has no email or phone, so there is no Klaviyo profile to show.");
      return;
    }
    var query = new URLSearchParams();
    query.set(kind, handle);
    card.show(query, function () {
      window.location.reload(); // Front's URL, auth_secret included, gives the reloaded page a fresh ticket
    });
  }

  window.Front.contextUpdates.subscribe(show);
})();
