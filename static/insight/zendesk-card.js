// The Klaviyo card in Zendesk's ticket sidebar. The ZAF SDK (ZAFClient) names the ticket's requester; every
// ZAF fact here is from https://developer.zendesk.com/apps/docs/agent/settings ("Using the Apps
// framework") and the Support API's ticket sidebar location (docs/vendors/zendesk.md, "Sidebar app").
(function () {
  "use strict";

  var card = window.KlaviyoSidebarCard;
  // "ZAFClient.init" returns false when the page was not opened by Zendesk (no origin and app_guid)
  var client = window.ZAFClient && window.ZAFClient.init();
  if (!client) {
    card.say("Klaviyo", "This card shows inside Zendesk: open a ticket there to see its requester's Klaviyo profile.");
    return;
  }
  var root = document.getElementById("klaviyo-card");

  card.onDrawn(function () {
    // "resize" is the ticket sidebar's action for the app's height
    client.invoke("resize", { width: "100%", height: Math.ceil(root.getBoundingClientRect().height) + 24 + "px" });
  });

  function text(value) {
    return value === null || value === undefined ? "" : String(value).trim();
  }

  function load() {
    client.get(["ticket.requester.email", "ticket.requester.id"]).then(
      function (data) {
        var query = new URLSearchParams();
        var email = text(data["ticket.requester.email"]);
        var id = text(data["ticket.requester.id"]);
        if (email) {
          query.set("email", email);
        }
        if (id) {
          query.set("customer_id", id);
        }
        if (!query.toString()) {
          card.say("Klaviyo", "This ticket's requester has no email yet, so there is no Klaviyo profile to show.");
          return;
        }
        card.show(query, function () {
          card.say("Klaviyo card expired", "Reload the app (or reopen the ticket) to see the card again.");
        });
      },
      function () {
        card.say("Klaviyo card unavailable", "Zendesk did not say who requested this ticket.");
      }
    );
  }

  load();
  client.on("ticket.requester.email.changed", load);
})();
